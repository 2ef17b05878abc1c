"""NUTS: bayes.sample vs NumPyro MCMC(NUTS) vs BlackJAX NUTS + window adaptation, one run.

Usage:
    python benchmarks/mcmc.py [--warmup 1000] [--draws 1000] [--chains 4] [--seeds 5]
                              [--repeats 2] [--only NAME ...] [--ttfd NAME ...] [--no-write]
    python benchmarks/mcmc.py --ttfd-only [--ttfd NAME ...]   # section mcmc-ttfd only

For each posterior (the six posteriordb models of ``examples/posteriordb`` and
a 100-dimensional Gaussian with correlation 0.9 between all coordinates) and
each sampler, in this one process and for the same seeds: compile time, warmup
and sampling time, minimum bulk ESS over the latent parameters, ESS per second
of sampling, and gradient evaluations per effective sample, as means over the
seeds; the ratio of ESS/s to each peer as a geometric mean over the seeds with
its standard error, and how many seeds bayes won. Time to first draw is measured in
fresh processes with a warm persistent compilation cache (each command is run
once to fill the cache, then timed). Writes the ``mcmc`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

GAUSS = "gauss100"
PEER_NAMES = {"numpyro": "NumPyro", "blackjax": "BlackJAX"}
TTFD_HEADER = ["posterior", "bayes, first draws", "bayes, InferenceData", "NumPyro",
               "ratio (first draws)"]  # fmt: skip
RATIO_HEADER = ["posterior", "vs NumPyro", "vs BlackJAX", "vs best peer",
                "bayes-diag vs best peer", "dense chains"]  # fmt: skip


def gaussian_target():
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    d, rho = 100, 0.9
    scale_tril = np.linalg.cholesky((1 - rho) * np.eye(d) + rho * np.ones((d, d)))

    def model(scale_tril):
        numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(d), scale_tril=scale_tril))

    return model, {"scale_tril": scale_tril}


def load(name: str):
    from bayes import posteriordb

    if name == GAUSS:
        return gaussian_target()
    module = posteriordb.load_model(name)
    return module.model, module.data


def min_ess(posterior: dict) -> float:
    import arviz as az
    import numpy as np

    ess = az.ess(az.from_dict(posterior={k: np.asarray(v) for k, v in posterior.items()}))
    return float(min(float(ess[v].min()) for v in ess.data_vars))


def run_bayes(
    model, data, args, dense_mass: bool | str = "auto"
) -> Callable[[int], tuple[dict, Callable[[], float]]]:
    """A function of the seed: one run's numbers and a function timing its sampling again."""
    import json

    import bayes

    deterministic = _deterministic(model, data)

    def run(seed: int):
        def call():
            return bayes.sample(model, data, num_chains=args.chains, num_warmup=args.warmup,
                                num_samples=args.draws, seed=seed, progress=False,
                                chain_method=args.chain_method, dense_mass=dense_mass)  # fmt: skip

        idata = call()
        attrs = idata.posterior.attrs
        latent = [k for k in idata.posterior.data_vars if k not in deterministic]
        ess = min_ess({k: idata.posterior[k].values for k in latent})
        grads = float(idata.sample_stats["n_steps"].sum())
        dense = json.loads(attrs["mass_matrix"]).count("dense")
        result = dict(compile=attrs["compile_s"], warmup=attrs["warmup_s"],
                      sampling=attrs["sampling_s"], ess=ess, grads=grads, dense=dense)  # fmt: skip
        # the same seed repeats the same draws, through the programs already compiled
        return result, lambda: call().posterior.attrs["sampling_s"]

    return run


def _deterministic(model, data) -> set[str]:
    from numpyro.handlers import seed, substitute, trace
    from numpyro.infer import init_to_uniform

    tr = trace(substitute(seed(model, 0), substitute_fn=init_to_uniform)).get_trace(**data)
    return {k for k, s in tr.items() if s["type"] == "deterministic"}


def run_numpyro(model, data, args) -> Callable[[int], tuple[dict, Callable[[], float]]]:
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(model), num_warmup=args.warmup, num_samples=args.draws,
                num_chains=args.chains, chain_method="vectorized", progress_bar=False)  # fmt: skip
    deterministic = _deterministic(model, data)
    compiled = []  # the sampling program is compiled by the first seed's first run

    def run(seed: int):
        t0 = time.perf_counter()
        mcmc.warmup(jax.random.key(seed), **data, extra_fields=("num_steps",))
        jax.block_until_ready(mcmc.post_warmup_state)
        t_warm = time.perf_counter() - t0
        state = mcmc.post_warmup_state

        def again() -> float:
            mcmc.post_warmup_state = state
            t0 = time.perf_counter()
            mcmc.run(state.rng_key, **data, extra_fields=("num_steps",))
            jax.block_until_ready(mcmc.get_samples())
            return time.perf_counter() - t0

        compile_s = 0.0
        if not compiled:
            t_first = again()  # sampling + compiling the sampling program
            compiled.append(True)
            t_samp = again()
            # NumPyro may reuse the warmup's program here; then the difference is
            # only timing noise and can come out below zero
            compile_s = max(t_first - t_samp, 0.0)
        else:
            t_samp = again()
        samples = mcmc.get_samples(group_by_chain=True)
        latent = {k: v for k, v in samples.items() if k not in deterministic}
        grads = float(mcmc.get_extra_fields()["num_steps"].sum())
        # warmup compile time is not separable from NumPyro's warmup call
        return dict(compile=compile_s, warmup=t_warm, sampling=t_samp,
                    ess=min_ess(latent), grads=grads), again  # fmt: skip

    return run


def run_blackjax(model, data, args) -> Callable[[int], tuple[dict, Callable[[], float]]]:
    import blackjax
    import jax
    import numpy as np

    from bayes.target import as_target

    target = as_target(model, data)
    logdensity = target.logdensity_fn
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)

    def adapt(key, position):
        (state, params), _ = warmup.run(key, position, num_steps=args.warmup)
        return state, params

    def sample(key, states, params):
        def one(state, key, params):
            return blackjax.nuts(logdensity, **params).step(key, state)

        def body(states, key):
            keys = jax.random.split(key, args.chains)
            states, info = jax.vmap(one)(states, keys, params)
            return states, (states.position, info.num_integration_steps)

        return jax.lax.scan(body, states, jax.random.split(key, args.draws))[1]

    programs = {}  # compiled by the first seed

    def run(seed: int):
        init_key, warmup_key, sample_key = jax.random.split(jax.random.key(seed), 3)
        positions = target.init_positions(rng_key=init_key, num_chains=args.chains)
        keys = jax.random.split(warmup_key, args.chains)
        compile_s = 0.0
        if not programs:
            t0 = time.perf_counter()
            programs["adapt"] = jax.jit(jax.vmap(adapt)).lower(keys, positions).compile()
            compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        states, params = programs["adapt"](keys, positions)
        jax.block_until_ready(states)
        t_warm = time.perf_counter() - t0
        if "sample" not in programs:
            t0 = time.perf_counter()
            programs["sample"] = jax.jit(sample).lower(sample_key, states, params).compile()
            compile_s += time.perf_counter() - t0

        def again() -> float:
            t0 = time.perf_counter()
            jax.block_until_ready(programs["sample"](sample_key, states, params))
            return time.perf_counter() - t0

        t0 = time.perf_counter()
        draws, steps = programs["sample"](sample_key, states, params)
        jax.block_until_ready(draws)
        t_samp = time.perf_counter() - t0
        draws = jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), draws)
        constrained, _ = target.postprocess(draws)
        latent = {k: v for k, v in constrained.items() if k in target.example_position}
        return dict(compile=compile_s, warmup=t_warm, sampling=t_samp,
                    ess=min_ess(latent), grads=float(np.sum(steps))), again  # fmt: skip

    return run


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    import numpy as np

    x = np.asarray(values, float)
    se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0
    return float(x.mean()), se


def paired_ratio(ours: list[float], theirs: list[float]) -> tuple[float, float, int, int]:
    """Geometric-mean ratio over paired seeds, its standard error, wins and seeds.

    With :math:`r_s = \\log(a_s / b_s)` per seed, the ratio is
    :math:`\\exp(\\bar r)` and its standard error
    :math:`\\exp(\\bar r)\\, \\mathrm{sd}(r) / \\sqrt{S}` (delta method).
    """
    import numpy as np

    log_ratio = np.log(np.asarray(ours, float) / np.asarray(theirs, float))
    mean, se = mean_se(list(log_ratio))
    return float(np.exp(mean)), float(np.exp(mean) * se), int((log_ratio > 0).sum()), len(ours)


def fmt_mean_se(mean: float, se: float) -> str:
    return f"{mean:.4g} ± {se:.3g}"


def fmt_ratio(ratio: float, se: float, wins: int, seeds: int) -> str:
    return f"{ratio:.2f} ± {se:.2f} ({wins}/{seeds})"


CHILD_BAYES = """
import time; t0 = time.perf_counter()
{prelude}
import bayes
from bayes import posteriordb, sampling
m = posteriordb.load_model({name!r})
first = []
def after_chunk(progress):  # the draws of the first sampling chunk are on the host
    if progress["t"] > 100 and not first:
        first.append(time.perf_counter() - t0)
sampling._after_chunk = after_chunk
bayes.sample(m.model, m.data, num_chains=4, num_warmup=100, num_samples=100, progress=False)
print(first[0], time.perf_counter() - t0)
"""
CHILD_NUMPYRO = """
import time; t0 = time.perf_counter()
import jax
from bayes.config import enable_compilation_cache
enable_compilation_cache()
from numpyro.infer import MCMC, NUTS
from bayes import posteriordb
m = posteriordb.load_model({name!r})
mcmc = MCMC(NUTS(m.model), num_warmup=100, num_samples=100, num_chains=4,
            chain_method="vectorized", progress_bar=False)
mcmc.run(jax.random.key(0), **m.data)
jax.block_until_ready(mcmc.get_samples())
print(time.perf_counter() - t0)
"""


CHILD_ARVIZ = """
import numpyro, time
t0 = time.perf_counter()
import arviz
print(time.perf_counter() - t0)
"""


NO_NUMBA = 'import sys; sys.modules["numba"] = None'
CHILD_IMPORTS = """
import time; t0 = time.perf_counter()
{prelude}
import bayes
import bayes.sampling
from bayes import posteriordb
m = posteriordb.load_model({name!r})
print(time.perf_counter() - t0)
"""


def time_to_first_draw(name: str, repeats: int = 5) -> dict[str, float]:
    """Seconds from process start to the first draws and to the result, cache warm.

    Returns the fastest of ``repeats`` fresh processes for each of:
    ``first`` (bayes: until the first sampling chunk's draws are on the host),
    ``result`` (bayes: until ``InferenceData`` is returned, ArviZ imported),
    ``first_nostore`` and ``result_nostore`` (the same with the program store
    off, ``$BAYES_NO_PROGRAM_CACHE``: JAX's persistent cache only), ``numpyro``
    (until ``MCMC.run`` returns its draws, which arrive together), ``imports``
    (a child importing ``bayes``, NumPyro and the model: the floor of
    ``first``) and ``arviz`` (``import arviz`` after NumPyro). Each command
    runs once to fill a fresh cache, then ``repeats`` times, alternating, so
    that load on a shared machine hits all alike. numba is made unimportable
    in the bayes children, as in the environment the Quickstart installs.
    """
    env = {**os.environ, "BAYES_PROGRESS": "0", "JAX_PLATFORMS": "cpu"}
    env.pop("BAYES_NO_PROGRAM_CACHE", None)
    nostore = {**env, "BAYES_NO_PROGRAM_CACHE": "1"}
    codes = {
        "bayes": (CHILD_BAYES.format(name=name, prelude=NO_NUMBA), env),
        "nostore": (CHILD_BAYES.format(name=name, prelude=NO_NUMBA), nostore),
        "numpyro": (CHILD_NUMPYRO.format(name=name), env),
        "imports": (CHILD_IMPORTS.format(name=name, prelude=NO_NUMBA), env),
        "arviz": (CHILD_ARVIZ, env),
    }
    times: dict[str, list[list[float]]] = {k: [] for k in codes}

    def run(code: str, child_env: dict) -> list[float]:
        done = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        return [float(x) for x in done.stdout.strip().splitlines()[-1].split()]

    with tempfile.TemporaryDirectory() as cache:
        for child_env in (env, nostore):
            child_env["BAYES_CACHE_DIR"] = cache
        for code, child_env in codes.values():  # fill the caches
            run(code, child_env)
        for _ in range(repeats):
            for key, (code, child_env) in codes.items():
                times[key].append(run(code, child_env))
    print("time to first draw runs", name, times, flush=True)
    best = {k: [min(col) for col in zip(*v)] for k, v in times.items()}
    return {
        "first": best["bayes"][0], "result": best["bayes"][1],
        "first_nostore": best["nostore"][0], "result_nostore": best["nostore"][1],
        "numpyro": best["numpyro"][0], "imports": best["imports"][0],
        "arviz": best["arviz"][0],
    }  # fmt: skip


def ttfd_section(ttfd: list[tuple[str, dict[str, float]]]) -> None:
    from _report import markdown_table, write_section

    header = ["posterior", "bayes, first draws", "NumPyro", "ratio", "bayes, InferenceData",
              "ratio", "first draws, store off", "InferenceData, store off", "imports",
              "import arviz"]  # fmt: skip
    rows = [
        [name, t["first"], t["numpyro"], t["first"] / t["numpyro"], t["result"],
         t["result"] / t["numpyro"], t["first_nostore"], t["result_nostore"], t["imports"],
         t["arviz"]]
        for name, t in ttfd
    ]  # fmt: skip
    load = os.getloadavg()
    body = (
        "Seconds from process start (imports included) in a fresh process whose caches are "
        "warm, 4 chains, 100 warmup + 100 draws, NUTS, float32; fastest of 5 runs, "
        "alternating between the commands in one session (target: first draws in at most "
        "half of NumPyro's time). *first draws*: until the draws of bayes' first sampling "
        "chunk (here all 100 per chain) are on the host, before they are converted; "
        "*InferenceData*: until `bayes.sample` returns, which imports ArviZ and builds the "
        "groups; NumPyro's draws all arrive when `MCMC.run` returns, so its one column is "
        "both. *store off*: bayes with `$BAYES_NO_PROGRAM_CACHE=1`, which leaves JAX's "
        "persistent compilation cache alone to help: every program is traced and lowered "
        "again before its compiled code is found there (`bayes._programs`). *imports*: a "
        "child importing `bayes`, its sampler and NumPyro and loading the model, the floor "
        "of the first-draws column; *import arviz*: importing ArviZ after NumPyro, the "
        "part of *InferenceData* that NumPyro's run does not pay.\n\n"
        + markdown_table(header, rows)
        + f"\n\n1-minute load average at the end: {load[0]:.1f}."
    )
    print(body)
    write_section("mcmc-ttfd", "NUTS: time to first draw in a fresh process", body)


def main() -> None:
    from bayes import posteriordb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--only", nargs="*", default=None, help="posteriors to run")
    parser.add_argument("--ttfd", nargs="*", default=["eight_schools-eight_schools_noncentered"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..S-1 per sampler")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed repeats of each seed's sampling phase")  # fmt: skip
    parser.add_argument("--chain-method", default="vectorized",
                        choices=["vectorized", "sequential"],
                        help="bayes.sample's chain_method for the bayes rows")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--ttfd-only", action="store_true", help="only time to first draw")
    args = parser.parse_args()
    if args.ttfd_only:
        ttfd = [(name, time_to_first_draw(name)) for name in args.ttfd]
        if args.no_write:
            print(ttfd)
        else:
            ttfd_section(ttfd)
        return

    import jax

    import bayes
    from bayes.config import enable_compilation_cache

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()
    from _report import markdown_table, write_section

    names = args.only or [*posteriordb.POSTERIORS, GAUSS]
    seeds = list(range(args.seeds))
    # bayes with its default metric choice, and with the diagonal metric the peers use
    peers = ("bayes", "bayes-diag", "numpyro", "blackjax")
    run_diag = functools.partial(run_bayes, dense_mass=False)
    load_avg = [os.getloadavg()[0]]
    rows, ratios = [], []
    for name in names:
        # the programs of earlier posteriors are done with; each holds memory
        # mappings, of which a process has a limited number (see bayes.clear_cache)
        bayes.clear_cache()
        model, data = load(name)
        runners = {peer: fn(model, data, args) for peer, fn in
                   zip(peers, (run_bayes, run_diag, run_numpyro, run_blackjax))}  # fmt: skip
        res: dict[str, list[dict]] = {peer: [] for peer in peers}
        for seed in seeds:
            again = {}
            for peer in peers:
                r, again[peer] = runners[peer](seed)
                res[peer].append(r)
            # each sampling phase again, alternating between samplers, so that load
            # from other jobs hits all alike; the fastest repeat is the least disturbed
            for _ in range(args.repeats):
                for peer in peers:
                    r = res[peer][-1]
                    r["sampling"] = min(r["sampling"], again[peer]())
            for peer in peers:
                r = res[peer][-1]
                r["ess_s"] = r["ess"] / r["sampling"]
                r["grad_per_ess"] = r["grads"] / r["ess"]
                print(name, "seed", seed, peer, {k: round(v, 3) for k, v in r.items()},
                      flush=True)  # fmt: skip
            load_avg.append(os.getloadavg()[0])
        for peer in peers:
            runs = res[peer]
            mean = {k: mean_se([r[k] for r in runs]) for k in runs[0]}
            rows.append([name, peer, runs[0]["compile"], mean["warmup"][0], mean["sampling"][0],
                         fmt_mean_se(*mean["ess"]), fmt_mean_se(*mean["ess_s"]),
                         mean["grad_per_ess"][0]])  # fmt: skip
        ours = [r["ess_s"] for r in res["bayes"]]
        diag = [r["ess_s"] for r in res["bayes-diag"]]
        mean = {peer: mean_se([r["ess_s"] for r in res[peer]])[0] for peer in PEER_NAMES}
        best = max(mean, key=mean.get)
        best_runs = [r["ess_s"] for r in res[best]]
        cells = [fmt_ratio(*paired_ratio(ours, [r["ess_s"] for r in res[peer]]))
                 for peer in (*PEER_NAMES, best)]  # fmt: skip
        dense = sum(r["dense"] for r in res["bayes"])
        ratios.append([name, *cells[:-1], f"{cells[-1]}, {PEER_NAMES[best]}",
                       fmt_ratio(*paired_ratio(diag, best_runs)),
                       f"{dense}/{args.chains * len(seeds)}"])  # fmt: skip
    load_range = f"{min(load_avg):.1f}-{max(load_avg):.1f}"
    ttfd = []
    for name in args.ttfd:
        t = time_to_first_draw(name)
        ttfd.append([name, t["first"], t["result"], t["numpyro"], t["first"] / t["numpyro"]])
    header = ["posterior", "sampler", "compile s", "warmup s", "sampling s", "min bulk ESS",
              "ESS/s", "grad evals / ESS"]  # fmt: skip
    body = (
        f"{args.chains} chains, {args.warmup} warmup + {args.draws} draws each, float64, "
        "default settings (target acceptance 0.8, tree depth 10; mass matrix: the peers' "
        'diagonal; bayes\' `dense_mass="auto"`, a dense matrix for the chains whose warmup '
        "finds correlations beyond sampling noise, else diagonal; `bayes-diag` is bayes "
        "with `dense_mass=False`, the peers' setting); "
        f"{len(seeds)} seeds (0-{len(seeds) - 1}), the same for every sampler; 1-minute "
        f"load average {load_range} during the run. "
        "NumPyro's compile column is its sampling-program compile only (its warmup "
        "compile is inside the warmup column); compile times are the first seed's, the "
        "other columns means over seeds (ESS and ESS/s: mean ± standard error). "
        "ESS/s is min bulk ESS over latent parameters "
        f"per second of sampling; the sampling time is the fastest of {args.repeats + 1} runs "
        "of the same compiled sampling phase (the same draws each time), run alternately "
        "with the peers'.\n\n"
        + markdown_table(header, rows)
        + "\n\nRatio of bayes ESS/s to each peer (target: >= 1 against the best peer, the "
        "peer with the higher mean ESS/s): geometric mean over seeds of the per-seed ratio "
        "± its standard error (delta method on the standard error of the mean log ratio), "
        "and in brackets the seeds on which bayes had the higher ESS/s:\n\n"
        + markdown_table(RATIO_HEADER, ratios)
    )
    if ttfd:
        body += (
            "\n\nTime to first draw in a fresh process with a warm compilation cache "
            "(100 warmup + 100 draws, seconds; target ratio <= 0.5):\n\n"
            + markdown_table(TTFD_HEADER, ttfd)
        )
    else:
        body += "\n\nTime to first draw: see the next section (`--ttfd-only`)."
    print(body)
    if not args.no_write:
        write_section("mcmc", "NUTS: bayes vs NumPyro vs BlackJAX", body)


if __name__ == "__main__":
    main()
