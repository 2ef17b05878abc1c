"""Time per BO iteration of every surrogate, and bnn-hmc against Pyro NUTS on the same BNN.

Part 1: for every registered surrogate (``gp``, ``saas``, ``bnn-hmc``,
``bnn-vi``, ``ensemble``, ``ibnn``, ``dkl``, ``stp``) and ``n`` in (50, 200)
observations of Hartmann6 (the first ``n`` points of one scrambled Sobol
design, outcomes from ``bayes.bo.problems.get_problem("hartmann6")``, negated
so that BO maximizes), one BO iteration is a surrogate fit followed by one
qLogEI optimization (``bayes.bo.acquisition.suggest``, ``q = 1``). The first
iteration at each ``n`` compiles (the JAX surrogates pad the data to the next
power of two, so ``n = 50`` and ``n = 200`` are different programs; a fresh
persistent compilation cache is used, so nothing comes from earlier runs) and
for ``bnn-hmc`` is a cold start (MAP initialization plus the full warmup).
The steady-state iterations refit on ``n + 1`` and ``n + 2`` points: same
padded size, so nothing is compiled again, and ``bnn-hmc`` starts from the
previous round's draws with its shorter warm-start warmup, as in a BO loop.

Part 2: ``bnn-hmc``'s sampler (``bayes.models.bnn.sample_nuts``, NUTS through
``bayes.sample`` in JAX) against Pyro's NUTS on the same BNN (2x50 tanh,
the surrogate's fan-in scaled Gaussian prior and log-noise prior,
inputs in ``[-1, 1]``, standardized outputs), float64 in both, with equal
warmup, draws, chains and maximum tree depth, every chain started at the same
MAP fit. Pyro runs its chains one after another (``num_chains=1`` per run: with
two cores shared with other jobs, multiprocessing chains would only compete).
A BO iteration is the fit plus the same qLogEI optimization over the ensemble
of thinned draws (ours through the JAX bridge, Pyro's with a torch forward
pass). ESS per second of the predictive means at a few test points measures
sampling efficiency, not just speed.

Run: ``python benchmarks/bo_surrogates.py [--quick]``. Rewrites the
``bo_surrogates`` section of docs/benchmarks.md (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

SURROGATES = ("gp", "saas", "bnn-hmc", "bnn-vi", "ensemble", "ibnn", "dkl", "stp")
# Settings of the full run where a default one is unaffordable on 2 shared cores (bnn-hmc's
# defaults, 4 chains x 600 NUTS iterations of depth up to 8 at n = 200, take tens of minutes).
FULL_OPTIONS = {
    "saas": {"num_warmup": 64, "num_samples": 64, "thinning": 8},
    "bnn-hmc": {
        "num_warmup": 100,
        "warm_num_warmup": 50,
        "num_samples": 40,
        "thinning": 2,
        "max_tree_depth": 6,
    },
}
# The acquisition settings of benchmarks/bo.py (suggest's defaults: 10 restarts, 512 raw samples).
FULL_ACQ = {"num_restarts": 4, "raw_samples": 256, "maxiter": 200, "mc_samples": 128}
QUICK_OPTIONS = {
    "saas": {"num_warmup": 16, "num_samples": 16, "thinning": 8},
    "bnn-hmc": {
        "num_warmup": 30,
        "warm_num_warmup": 15,
        "num_samples": 20,
        "map_steps": 200,
        "max_tree_depth": 5,
    },
    "bnn-vi": {"num_steps": 300},
    "ensemble": {"num_steps": 200},
    "ibnn": {"depths": (1, 2), "num_steps": 100},
    "dkl": {"num_steps": 100},
    "stp": {"depths": (1, 2), "num_steps": 100},
}
QUICK_ACQ = {"num_restarts": 2, "raw_samples": 64, "maxiter": 30, "mc_samples": 64}


def design(n: int, seed: int = 0):
    """The first ``n`` points of a scrambled Sobol design on Hartmann6, as torch tensors."""
    import torch
    from scipy.stats import qmc

    from bayes.bo import get_problem

    problem = get_problem("hartmann6")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        U = qmc.Sobol(problem.space.dim, scramble=True, seed=seed).random(n)
    Y = np.array([[-problem.objective(problem.space.decode(u))] for u in U])
    return torch.tensor(U, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64)


def bo_iteration(
    name: str, options: dict, X, Y, acq: dict, seed: int, *, one_blas_thread: bool = True
) -> tuple[float, float]:
    """Fit ``name`` on ``(X, Y)`` and optimize qLogEI once: ``(fit_s, acquisition_s)``.

    ``one_blas_thread=False`` leaves the BLAS/LAPACK thread pool at its default
    (torch still gets one thread), as a study's iteration ran before it limited both.
    """
    import torch

    from bayes.bo.acquisition import suggest
    from bayes.bo.study import _single_threaded
    from bayes.bo.surrogates import make_surrogate

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    # the thread settings of a study's iteration (one torch and one BLAS thread)
    threads = _single_threaded(len(X)) if one_blas_thread else contextlib.nullcontext()
    with warnings.catch_warnings(), threads:
        warnings.simplefilter("ignore")
        model = make_surrogate(name, **options).fit(X, Y)
        t1 = time.perf_counter()
        suggest(model, X, Y, q=1, acquisition="qlogei", options=acq)
    return t1 - t0, time.perf_counter() - t1


def per_surrogate(sizes, options_of, acq: dict, X, Y) -> list[list]:
    from bayes.bo.jax_surrogates import BNNHMCSurrogate

    rows = []
    for n in sizes:
        for name in SURROGATES:
            BNNHMCSurrogate._previous.clear()  # the first fit at each n is a cold start
            times = [bo_iteration(name, options_of(name), X[: n + k], Y[: n + k], acq, seed=k)
                     for k in range(3)]  # fmt: skip
            first, second, third = (f + a for f, a in times)
            rows.append([name, n, times[0][0], times[0][1], first, times[1][0], times[1][1],
                         second, third])  # fmt: skip
            print(f"  {name:9s} n={n:4d}: first {first:7.2f} s, then {second:6.2f} s, "
                  f"{third:6.2f} s", flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------- Pyro peer (torch) --


def torch_forward(config, w, x):
    """Our flat layout (per layer: row-major ``n_in x n_out`` weights, then biases) in torch.

    ``w`` is ``(..., num_params)`` and ``x`` ``(n, d)``; returns ``(..., n, out_dim)``.
    """
    import torch

    sizes = [config.in_dim] + [config.width] * config.depth + [config.out_dim]
    h, start = x, 0
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        weight = w[..., start : start + n_in * n_out].reshape(*w.shape[:-1], n_in, n_out)
        start += n_in * n_out
        bias = w[..., start : start + n_out]
        start += n_out
        h = h @ weight + bias.unsqueeze(-2)
        if i < len(sizes) - 2:
            h = torch.tanh(h)
    return h


def pyro_fit(config, prior, x, y, starts, *, num_warmup, num_samples, max_tree_depth, seed):
    """Pyro NUTS, one chain per run started at ``starts[c]``: draws ``(C, S, p)``, ``(C, S, m)``."""
    import pyro
    import pyro.distributions as dist
    import torch
    from bayes.models.bnn import prior_scales
    from pyro.infer import MCMC, NUTS

    scales = torch.tensor(prior_scales(config, weight_scale=prior.weight_scale,
                                       bias_scale=prior.bias_scale,
                                       input_scale=prior.input_scale))  # fmt: skip
    m = config.out_dim

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros_like(scales), scales).to_event(1))
        log_noise = pyro.sample(
            "log_noise",
            dist.Normal(torch.full((m,), prior.log_noise_loc, dtype=torch.float64),
                        prior.log_noise_scale).to_event(1),
        )  # fmt: skip
        f = torch_forward(config, w, x)
        pyro.sample("y", dist.Normal(f, log_noise.exp()).to_event(2), obs=y)

    ws, noises = [], []
    for c in range(starts[0].shape[0]):
        pyro.set_rng_seed(seed + c)
        kernel = NUTS(model, max_tree_depth=max_tree_depth, target_accept_prob=0.8,
                      jit_compile=True, ignore_jit_warnings=True)  # fmt: skip
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup, num_chains=1,
                    initial_params={"w": starts[0][c], "log_noise": starts[1][c]},
                    disable_progbar=True)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mcmc.run(x, y)
        draws = mcmc.get_samples()
        ws.append(draws["w"])
        noises.append(draws["log_noise"])
    return torch.stack(ws), torch.stack(noises)


def torch_ensemble_model(config, w, mean, std):
    """A BoTorch ``EnsembleModel`` over weight draws ``w`` (``S x p``) with a torch forward."""
    from botorch.models.ensemble import EnsembleModel

    class TorchBNN(EnsembleModel):
        def __init__(self):
            super().__init__()
            self._num_outputs = config.out_dim

        def forward(self, X):
            out = torch_forward(config, w, 2 * X.unsqueeze(-3) - 1)
            return out * std + mean  # batch x S x q x m

    return TorchBNN()


def ess_of_means(config, w, x_test) -> np.ndarray:
    """Bulk ESS of the network output at each test point; ``w`` is ``(C, S, p)`` NumPy."""
    import arviz as az
    import torch

    f = torch_forward(config, torch.tensor(w), torch.tensor(x_test))[..., 0].numpy()
    ess = az.ess(az.convert_to_dataset({"f": f}))
    return np.asarray(ess["f"].values)


def surrogate_prior():
    """The ``bnn-hmc`` surrogate's default prior, which both samplers use."""
    from bayes.models.bnn import BNNPrior

    from bayes.bo.jax_surrogates import BNNHMCSurrogate

    return BNNPrior(**BNNHMCSurrogate.prior_defaults)


def versus_pyro(n: int, X, Y, settings: dict, acq: dict, thinning: int) -> tuple[list, dict]:
    import jax
    import torch
    from bayes.models.bnn import MLPConfig, pad_data, sample_nuts, standardize, train_ensemble

    from bayes.bo.acquisition import suggest
    from bayes.bo.jax_models import JaxEnsembleModel

    prior = surrogate_prior()

    C, W, S, D = (settings[k] for k in ("num_chains", "num_warmup", "num_samples", "depth"))
    config = MLPConfig(X.shape[1], 1)
    x = X[:n].numpy()
    z, mean, std = standardize(Y[:n].numpy())
    data = pad_data(2 * x - 1, z)
    x_test = 2 * np.asarray(X[n : n + 5]) - 1  # points not in the training set
    with jax.enable_x64(True):
        starts = train_ensemble(config, data, rng_key=jax.random.key(0), num_members=C,
                                num_steps=1000, bootstrap=False, prior=prior)  # fmt: skip
        starts = (np.asarray(starts.w), np.asarray(starts.log_noise))

    def acquisition_time(draws_w, make_model):
        members = draws_w[:, ::thinning].reshape(-1, draws_w.shape[-1])
        model = make_model(members)
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            suggest(model, X[:n], Y[:n], q=1, acquisition="qlogei", options=acq)
        return time.perf_counter() - t0

    results = {}
    for run in ("first", "steady"):
        t0 = time.perf_counter()
        with jax.enable_x64(True):
            draws = sample_nuts(
                config, data, seed=1 if run == "first" else 2, num_chains=C, num_warmup=W,
                num_samples=S, thinning=1, max_tree_depth=D,
                init=_as_draws(starts), prior=prior,
            )  # fmt: skip
            w = np.asarray(draws.w).reshape(C, S, -1)
        fit = time.perf_counter() - t0
        acq_s = acquisition_time(w, lambda mem: JaxEnsembleModel(config, mem, mean, std))
        results[f"ours-{run}"] = (fit, acq_s, w)
        print(f"  bayes ({run}): fit {fit:.1f} s, acquisition {acq_s:.1f} s", flush=True)

    xt, yt = torch.as_tensor(data.x[:n]), torch.as_tensor(data.y[:n])
    start_t = (torch.tensor(starts[0]), torch.tensor(starts[1]))
    t0 = time.perf_counter()
    pw, _ = pyro_fit(config, prior, xt, yt, start_t, num_warmup=W, num_samples=S,
                     max_tree_depth=D, seed=3)  # fmt: skip
    fit = time.perf_counter() - t0
    mean_t, std_t = torch.as_tensor(mean), torch.as_tensor(std)
    acq_s = acquisition_time(pw.numpy(),
                      lambda mem: torch_ensemble_model(config, torch.as_tensor(mem), mean_t,
                                                       std_t))  # fmt: skip
    results["pyro"] = (fit, acq_s, pw.numpy())
    print(f"  Pyro: fit {fit:.1f} s, acquisition {acq_s:.1f} s", flush=True)

    rows, summary = [], {}
    for key, label in (("ours-first", "bayes (first call: compiles)"),
                       ("ours-steady", "bayes (steady state)"), ("pyro", "Pyro NUTS")):  # fmt: skip
        fit, acq_s, w = results[key]
        ess = ess_of_means(config, w, x_test)
        post_mean = torch_forward(config, torch.as_tensor(w.reshape(-1, w.shape[-1])),
                                  torch.as_tensor(x_test))[..., 0].mean(0).numpy()  # fmt: skip
        summary[key] = {"fit": fit, "iter": fit + acq_s, "ess_s": float(np.median(ess)) / fit,
                        "mean": post_mean * std[0] + mean[0]}  # fmt: skip
        rows.append([label, fit, acq_s, fit + acq_s, float(np.min(ess)), float(np.median(ess)),
                     float(np.median(ess)) / fit])  # fmt: skip
    return rows, summary


def _as_draws(starts):
    import jax.numpy as jnp
    from bayes.models.bnn import WeightDraws

    return WeightDraws(jnp.asarray(starts[0]), jnp.asarray(starts[1]))


def blas_threads(sizes, options_of, acq: dict, X, Y, names=("ibnn", "dkl", "stp")):
    """The kernel surrogates with the default BLAS thread pool against one BLAS thread.

    Per surrogate and ``n``: three iterations (``n``, ``n + 1``, ``n + 2`` points) in each
    setting, the default pool first so that it, not the serial run, pays for compiling;
    the second and third iterations are reported. Rows: fit and acquisition seconds
    (mean of the two), and the ratios default / one thread.
    """
    rows = []
    for n in sizes:
        for name in names:
            result = {}
            for serial in (False, True):
                times = [bo_iteration(name, options_of(name), X[: n + k], Y[: n + k], acq,
                                      seed=k, one_blas_thread=serial)
                         for k in range(3)]  # fmt: skip
                result[serial] = np.mean(times[1:], axis=0)
            (fit_d, acq_d), (fit_s, acq_s) = result[False], result[True]
            rows.append([name, n, fit_d, fit_s, fit_d / fit_s, acq_d, acq_s, acq_d / acq_s])
            print(f"  {name:5s} n={n:4d}: fit {fit_d:6.2f} -> {fit_s:6.2f} s, "
                  f"acquisition {acq_d:6.2f} -> {acq_s:6.2f} s", flush=True)  # fmt: skip
    return rows


def body_text(acq, n_pyro, hmc, table, ptable, ratio, load_before, load_after) -> str:
    """The Markdown of the docs section: settings, both tables and the notes."""
    reduced = "; ".join(
        f"{name}: " + ", ".join(f"{k}={v}" for k, v in opts.items())
        for name, opts in FULL_OPTIONS.items()
    )
    return (
        "**Time per BO iteration** on Hartmann6 (d = 6): the first `n` points of one "
        "scrambled Sobol design, one surrogate fit plus one qLogEI optimization "
        "(`bayes.bo.acquisition.suggest`, q = 1, the options of the `bo` section above: "
        f"{acq['num_restarts']} restarts, {acq['raw_samples']} raw samples, "
        f"{acq['maxiter']} L-BFGS-B iterations, {acq['mc_samples']} MC samples), one torch "
        "thread and one BLAS thread, as in a study's iteration. Every surrogate runs with "
        "its default settings except, to keep the run "
        f"affordable on 2 shared cores, {reduced} (the defaults are saas 256 warmup + 128 "
        "draws thinned by 16; bnn-hmc 500 warmup cold / 200 warm, 100 draws thinned by 4, "
        "tree depth 8). *first*: the first iteration at that `n` in this process with a "
        "fresh persistent compilation cache (it compiles for the padded size; bnn-hmc "
        "cold-starts from MAP fits); *second*: refit on `n + 1` points (same padded size; "
        "bnn-hmc warm-starts from the previous draws); *third*: one more on `n + 2` points. "
        "bnn-hmc's second iteration still compiles: its warm start runs a shorter warmup, "
        "and `sample_nuts` passes `chunk_size = max(num_warmup, num_samples)`, a new scan "
        "length; from the third on nothing is compiled. At n = 50 bnn-hmc's first "
        "iteration reuses programs compiled by the Pyro comparison, which runs first "
        "(same padded size, chains and tree depth). gp is BoTorch (torch); saas is "
        "BoTorch's model, whose NUTS fit BoTorch runs in NumPyro (JAX, float32); the "
        "others are JAX through the bridge.\n\n"
        + table
        + f"\n\n**bnn-hmc against Pyro NUTS** on the same BNN at n = {n_pyro} (2x50 tanh, "
        "the surrogate's fan-in scaled Gaussian prior with "
        f"`weight_scale={surrogate_prior().weight_scale:g}` and "
        "`BNNPrior`'s log-noise prior, inputs in "
        "[-1, 1], standardized outputs, float64), "
        f"{hmc['num_chains']} chains x ({hmc['num_warmup']} warmup + {hmc['num_samples']} "
        f"draws), max tree depth {hmc['depth']}, diagonal mass matrix, target acceptance "
        "0.8, every chain of both started at the same MAP fits (the warm-start situation "
        "of the surrogate). Pyro (`jit_compile=True`, one torch thread) runs its chains "
        "one after another (`num_chains=1` per run: on 2 shared cores, multiprocessing "
        "chains would only compete). A BO iteration adds the same qLogEI optimization "
        "over the ensemble of draws thinned by 2 (ours: JAX forward through the bridge; "
        "Pyro's: a torch forward). ESS: bulk ESS of the network output at 5 points "
        "outside the training set, over all draws; ESS/s divides by the fit time.\n\n"
        + ptable
        + f"\n\n{ratio} Target: ours at least 3x faster per iteration than Pyro at equal "
        "draws. The ESS of the network output is small for both samplers at this budget "
        "(a 2x50 BNN posterior mixes slowly in 150 NUTS steps per chain), so the ESS/s "
        "ratio is indicative only. Our acquisition step is slower than the peer's. It "
        "is not the JAX computation: profiled with 100 members of the 2x50 network, the "
        "bridged forward pass plus VJP at 204 rows took 23 ms, the same batched forward "
        "and backward pass written in torch 57 ms, and the bridge differentiates the "
        "inputs only. The acquisition asks for more of it: the model pads each batch of "
        "rows to 64, 512 or 4096 (four restarts of one candidate plus some 40 pruned "
        "baseline points run as 512 rows), and the number of L-BFGS-B evaluations "
        "depends on the surrogate; the peer's evaluations were not counted.\n\n"
        f"Load average {load_before} at the start, {load_after} at the end, on 2 cores "
        "(above 2, other jobs shared the machine and the absolute times are inflated; the "
        "ratios come from the same run).\n\n"
        "Run `python benchmarks/bo_surrogates.py` to reproduce."
    )


def blas_text(acq, table, load_before, load_after) -> str:
    """The docs section of ``--blas-threads``."""
    return (
        "The kernel surrogates (`ibnn`, `dkl`, `stp`) factorize an n x n matrix at every "
        "step of their marginal-likelihood fit and at every acquisition evaluation. JAX "
        "hands the Cholesky factorization and triangular solves to the OpenBLAS that "
        "SciPy ships, whose worker threads spin against other processes on a shared "
        "machine. A study's iteration therefore runs with one BLAS thread (and one torch "
        "thread) below 2000 observations. Hartmann6 as in the section above, "
        f"{acq['num_restarts']} restarts, {acq['raw_samples']} raw samples, "
        f"{acq['maxiter']} L-BFGS-B iterations; per surrogate and n the second and third "
        "iterations (n + 1 and n + 2 points, nothing compiled) averaged, with the default "
        "thread pool and with one thread, in one process; ratio = default / one thread.\n\n"
        + table
        + f"\n\nLoad average {load_before} at the start, {load_after} at the end, on 2 "
        "cores (the threads spin most when other jobs keep the load above the core "
        "count).\n\n"
        "Run `python benchmarks/bo_surrogates.py --blas-threads` to reproduce."
    )


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, no docs update")
    parser.add_argument("--skip-surrogates", action="store_true", help="only the Pyro part")
    parser.add_argument(
        "--blas-threads", action="store_true",
        help="only the kernel surrogates with the default BLAS thread pool vs one thread",
    )  # fmt: skip
    args = parser.parse_args()
    # A fresh persistent compilation cache: the first iterations really compile.
    cache = tempfile.mkdtemp(prefix="bo-surrogates-jax-")
    os.environ["BAYES_CACHE_DIR"] = cache
    import torch

    # One torch thread, as in benchmarks/bo.py: on 2 shared cores a second intra-op
    # thread makes small-tensor work (Pyro's NUTS above all) many times slower.
    torch.set_num_threads(1)

    sizes = (20,) if args.quick else (50, 200)
    acq = QUICK_ACQ if args.quick else FULL_ACQ
    options = QUICK_OPTIONS if args.quick else FULL_OPTIONS
    hmc = {"num_chains": 4, "num_warmup": 100, "num_samples": 50, "depth": 6}
    if args.quick:
        hmc = {"num_chains": 2, "num_warmup": 20, "num_samples": 20, "depth": 5}
    n_pyro = 20 if args.quick else 50
    X, Y = design(max(sizes) + 8)
    load_before = load_line()
    if args.blas_threads:
        print("Kernel surrogates, default BLAS threads vs one:", flush=True)
        trows = blas_threads(sizes, lambda name: options.get(name, {}), acq, X, Y)
        theader = ["surrogate", "n", "fit s (default)", "fit s (1 thread)", "fit ratio",
                   "acq s (default)", "acq s (1 thread)", "acq ratio"]  # fmt: skip
        ttable = markdown_table(theader, trows)
        print(ttable, f"load average {load_before} -> {load_line()}", sep="\n\n")
        if not args.quick:
            write_section("bo_blas_threads", "BO kernel surrogates: BLAS threads",
                          blas_text(acq, ttable, load_before, load_line()))  # fmt: skip
        return

    # The Pyro comparison first, so that our first call there really compiles.
    print(f"bnn-hmc vs Pyro NUTS at n={n_pyro}:", flush=True)
    pyro_rows, summary = versus_pyro(n_pyro, X, Y, hmc, acq, thinning=2)
    rows = []
    if not args.skip_surrogates:
        print("Per-surrogate BO iterations on Hartmann6:", flush=True)
        rows = per_surrogate(sizes, lambda name: options.get(name, {}), acq, X, Y)
    load_after = load_line()

    header = ["surrogate", "n", "first: fit s", "first: acq s", "first: iter s",
              "second: fit s", "second: acq s", "second: iter s", "third: iter s"]  # fmt: skip
    table = markdown_table(header, rows) if rows else ""
    pheader = ["sampler", "fit s", "acquisition s", "iteration s", "min ESS", "median ESS",
               "median ESS/s"]  # fmt: skip
    ptable = markdown_table(pheader, pyro_rows)
    ours, pyro = summary["ours-steady"], summary["pyro"]
    ratio = (
        f"Ratio Pyro / bayes (steady state): fit {pyro['fit'] / ours['fit']:.1f}x, "
        f"BO iteration {pyro['iter'] / ours['iter']:.1f}x, "
        f"median ESS/s {ours['ess_s'] / max(pyro['ess_s'], 1e-12):.1f}x "
        f"(first call including compilation: iteration "
        f"{pyro['iter'] / summary['ours-first']['iter']:.1f}x). Posterior predictive means "
        f"at the test points, bayes {np.round(ours['mean'], 2).tolist()} vs Pyro "
        f"{np.round(pyro['mean'], 2).tolist()}."
    )
    print(table, ptable, ratio, f"load average {load_before} -> {load_after}", sep="\n\n")
    # Raw tables kept beside the docs text, in case the write below needs redoing.
    Path(tempfile.gettempdir(), "bo_surrogates_tables.md").write_text(
        "\n\n".join([table, ptable, ratio, load_before, load_after])
    )
    if args.quick:
        return
    body = body_text(acq, n_pyro, hmc, table, ptable, ratio, load_before, load_after)
    write_section("bo_surrogates", "BO surrogates: time per iteration", body)


if __name__ == "__main__":
    main()
