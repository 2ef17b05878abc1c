"""NUTS: bayes.sample vs NumPyro MCMC(NUTS) vs BlackJAX NUTS + window adaptation, one run.

Usage:
    python benchmarks/mcmc.py [--warmup 1000] [--draws 1000] [--chains 4]
                              [--only NAME ...] [--ttfd NAME ...] [--no-write]
    python benchmarks/mcmc.py --ttfd-only [--ttfd NAME ...]   # section mcmc-ttfd only

For each posterior (the six posteriordb models of ``examples/posteriordb`` and
a 100-dimensional Gaussian with correlation 0.9 between all coordinates) and
each sampler, in this one process: compile time, warmup and sampling time,
minimum bulk ESS over the latent parameters, ESS per second of sampling, and
gradient evaluations per effective sample. Time to first draw is measured in
fresh processes with a warm persistent compilation cache (each command is run
once to fill the cache, then timed). Writes the ``mcmc`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
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


def run_bayes(model, data, args) -> tuple[dict, Callable[[], float]]:
    """One run; returns its numbers and a function timing the sampling phase again."""
    import bayes

    def call():
        return bayes.sample(model, data, num_chains=args.chains, num_warmup=args.warmup,
                            num_samples=args.draws, seed=0, progress=False)  # fmt: skip

    idata = call()
    attrs = idata.posterior.attrs
    latent = [k for k in idata.posterior.data_vars if k not in _deterministic(model, data)]
    ess = min_ess({k: idata.posterior[k].values for k in latent})
    grads = float(idata.sample_stats["n_steps"].sum())
    result = dict(compile=attrs["compile_s"], warmup=attrs["warmup_s"],
                  sampling=attrs["sampling_s"], ess=ess, grads=grads)  # fmt: skip
    # the same seed repeats the same draws, through the programs already compiled
    return result, lambda: call().posterior.attrs["sampling_s"]


def _deterministic(model, data) -> set[str]:
    from numpyro.handlers import seed, substitute, trace
    from numpyro.infer import init_to_uniform

    tr = trace(substitute(seed(model, 0), substitute_fn=init_to_uniform)).get_trace(**data)
    return {k for k, s in tr.items() if s["type"] == "deterministic"}


def run_numpyro(model, data, args) -> tuple[dict, Callable[[], float]]:
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(model), num_warmup=args.warmup, num_samples=args.draws,
                num_chains=args.chains, chain_method="vectorized", progress_bar=False)  # fmt: skip
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.key(0), **data, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.post_warmup_state)
    t_warm = time.perf_counter() - t0
    state = mcmc.post_warmup_state
    t0 = time.perf_counter()
    mcmc.run(state.rng_key, **data, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.get_samples())
    t_first = time.perf_counter() - t0  # sampling + compiling the sampling program
    mcmc.post_warmup_state = state
    t0 = time.perf_counter()
    mcmc.run(state.rng_key, **data, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.get_samples())
    t_samp = time.perf_counter() - t0
    samples = mcmc.get_samples(group_by_chain=True)
    latent = {k: v for k, v in samples.items() if k not in _deterministic(model, data)}
    grads = float(mcmc.get_extra_fields()["num_steps"].sum())

    def again() -> float:
        mcmc.post_warmup_state = state
        t0 = time.perf_counter()
        mcmc.run(state.rng_key, **data, extra_fields=("num_steps",))
        jax.block_until_ready(mcmc.get_samples())
        return time.perf_counter() - t0

    # warmup compile time is not separable from NumPyro's warmup call
    return dict(compile=t_first - t_samp, warmup=t_warm, sampling=t_samp,
                ess=min_ess(latent), grads=grads), again  # fmt: skip


def run_blackjax(model, data, args) -> tuple[dict, Callable[[], float]]:
    import blackjax
    import jax
    import numpy as np

    from bayes.target import as_target

    target = as_target(model, data)
    logdensity = target.logdensity_fn
    positions = target.init_positions(rng_key=jax.random.key(1), num_chains=args.chains)
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)

    def adapt(key, position):
        (state, params), _ = warmup.run(key, position, num_steps=args.warmup)
        return state, params

    keys = jax.random.split(jax.random.key(0), args.chains)
    t0 = time.perf_counter()
    adapt_c = jax.jit(jax.vmap(adapt)).lower(keys, positions).compile()
    c_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    states, params = adapt_c(keys, positions)
    jax.block_until_ready(states)
    t_warm = time.perf_counter() - t0

    def sample(key, states, params):
        def one(state, key, params):
            return blackjax.nuts(logdensity, **params).step(key, state)

        def body(states, key):
            keys = jax.random.split(key, args.chains)
            states, info = jax.vmap(one)(states, keys, params)
            return states, (states.position, info.num_integration_steps)

        return jax.lax.scan(body, states, jax.random.split(key, args.draws))[1]

    key = jax.random.key(2)
    t0 = time.perf_counter()
    sample_c = jax.jit(sample).lower(key, states, params).compile()
    c_samp = time.perf_counter() - t0
    t0 = time.perf_counter()
    positions, steps = sample_c(key, states, params)
    jax.block_until_ready(positions)
    t_samp = time.perf_counter() - t0
    positions = jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), positions)
    constrained, _ = target.postprocess(positions)
    latent = {k: v for k, v in constrained.items() if k in target.example_position}

    def again() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(sample_c(key, states, params))
        return time.perf_counter() - t0

    return dict(compile=c_warm + c_samp, warmup=t_warm, sampling=t_samp,
                ess=min_ess(latent), grads=float(np.sum(steps))), again  # fmt: skip


CHILD_BAYES = """
import time; t0 = time.perf_counter()
{prelude}
import bayes
from bayes import posteriordb
m = posteriordb.load_model({name!r})
bayes.sample(m.model, m.data, num_chains=4, num_warmup=100, num_samples=100, progress=False)
print(time.perf_counter() - t0)
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
from bayes import posteriordb
m = posteriordb.load_model({name!r})
import arviz
print(time.perf_counter() - t0)
"""


def time_to_first_draw(name: str, repeats: int = 5) -> tuple[float, float, float, float, float]:
    """Seconds from process start to the first 100 draws, cache warm.

    Returns ``(bayes, bayes without numba, NumPyro, import arviz, imports)``,
    the last the time a child without numba spends importing JAX, NumPyro,
    ``bayes`` and ArviZ and loading the model before it samples anything (a
    floor for the first). Each
    command runs once to fill a fresh cache, then ``repeats`` times,
    alternating between them so that load on a shared machine hits all
    alike; the minima (the runs least disturbed by other jobs) are returned.
    Where numba is installed, ArviZ compiles a numba ufunc when it is
    imported; numba is in this environment only for the ``particles`` peer of
    the SMC benchmark, not in what the Quickstart installs, so the second
    child runs with numba made unimportable. The last is the time
    ``import arviz`` takes in a fresh process after NumPyro (numba present):
    the part of ours that building ``InferenceData`` costs and NumPyro's run
    does not pay.
    """
    env = {**os.environ, "BAYES_PROGRESS": "0", "JAX_PLATFORMS": "cpu"}
    codes = [
        CHILD_BAYES.format(name=name, prelude=""),
        CHILD_BAYES.format(name=name, prelude=NO_NUMBA),
        CHILD_NUMPYRO.format(name=name),
        CHILD_ARVIZ,
        CHILD_IMPORTS.format(name=name, prelude=NO_NUMBA),
    ]
    times: list[list[float]] = [[] for _ in codes]

    def run(code: str) -> float:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        return float(done.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as cache:
        env["BAYES_CACHE_DIR"] = cache
        for code in codes:  # fill the cache
            run(code)
        for _ in range(repeats):
            for i, code in enumerate(codes):
                times[i].append(run(code))
    print("time to first draw runs", name, times, flush=True)
    return tuple(min(t) for t in times)


def ttfd_section(ttfd: list[list]) -> None:
    from _report import markdown_table, write_section

    body = (
        "Seconds from process start (imports included) to the first 100 draws "
        "(4 chains, 100 warmup + 100 draws, NUTS, float32) in a fresh process whose "
        "persistent compilation cache is warm; fastest of 5 runs, alternating between the "
        "samplers in one session (target ratio <= 0.5). `bayes, no numba` runs with numba "
        "unimportable, as in the environment the Quickstart installs: numba is here only for "
        "the `particles` peer of the SMC benchmark, and where it is installed ArviZ compiles "
        "a numba ufunc on import. `import arviz` is the time importing ArviZ takes in a fresh "
        "process after NumPyro (numba present): returning `InferenceData` costs it and "
        "NumPyro's run does not. `imports` is the time a child without numba takes to "
        "import `bayes`, NumPyro and ArviZ and load the model, before it samples: the floor "
        "of `bayes, no numba`.\n\n"
        + markdown_table(
            [
                "posterior",
                "bayes",
                "NumPyro",
                "ratio",
                "bayes, no numba",
                "ratio",
                "import arviz",
                "imports",
            ],
            ttfd,
        )
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
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of sampling")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--ttfd-only", action="store_true", help="only time to first draw")
    args = parser.parse_args()
    if args.ttfd_only:
        ttfd = []
        for name in args.ttfd:
            ours, no_numba, theirs, arviz, imports = time_to_first_draw(name)
            ttfd.append(
                [name, ours, theirs, ours / theirs, no_numba, no_numba / theirs, arviz, imports]
            )
        if args.no_write:
            print(ttfd)
        else:
            ttfd_section(ttfd)
        return

    import jax

    from bayes.config import enable_compilation_cache

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()
    from _report import markdown_table, write_section

    names = args.only or [*posteriordb.POSTERIORS, GAUSS]
    rows, ratios = [], []
    for name in names:
        model, data = load(name)
        res, again = {}, {}
        for peer, fn in (("bayes", run_bayes), ("numpyro", run_numpyro),
                         ("blackjax", run_blackjax)):  # fmt: skip
            res[peer], again[peer] = fn(model, data, args)
        # each sampling phase again, alternating between samplers, so that load
        # from other jobs hits all alike; the fastest repeat is the least disturbed
        for _ in range(args.repeats):
            for peer in res:
                res[peer]["sampling"] = min(res[peer]["sampling"], again[peer]())
        for peer, r in res.items():
            r["ess_s"] = r["ess"] / r["sampling"]
            r["grad_per_ess"] = r["grads"] / r["ess"]
            print(name, peer, {k: round(v, 3) for k, v in r.items()}, flush=True)
            rows.append([name, peer, r["compile"], r["warmup"], r["sampling"], r["ess"],
                         r["ess_s"], r["grad_per_ess"]])  # fmt: skip
        best = max(res["numpyro"]["ess_s"], res["blackjax"]["ess_s"])
        ratios.append([name, res["bayes"]["ess_s"] / res["numpyro"]["ess_s"],
                       res["bayes"]["ess_s"] / res["blackjax"]["ess_s"],
                       res["bayes"]["ess_s"] / best])  # fmt: skip
    ttfd = []
    for name in args.ttfd:
        ours, _, theirs, _, _ = time_to_first_draw(name)
        print("time to first draw", name, ours, theirs, flush=True)
        ttfd.append([name, ours, theirs, ours / theirs])
    header = ["posterior", "sampler", "compile s", "warmup s", "sampling s", "min bulk ESS",
              "ESS/s", "grad evals / ESS"]  # fmt: skip
    body = (
        f"{args.chains} chains, {args.warmup} warmup + {args.draws} draws each, float64, "
        "default settings (diagonal mass matrix, target acceptance 0.8, tree depth 10). "
        "NumPyro's compile column is its sampling-program compile only (its warmup "
        "compile is inside the warmup column). ESS/s is min bulk ESS over latent parameters "
        f"per second of sampling; the sampling time is the fastest of {args.repeats + 1} runs "
        "of the same compiled sampling phase (the same draws each time), run alternately "
        "with the peers'.\n\n"
        + markdown_table(header, rows)
        + "\n\nRatio of bayes ESS/s to each peer (target: >= 1 against the best peer):\n\n"
        + markdown_table(["posterior", "vs NumPyro", "vs BlackJAX", "vs best peer"], ratios)
    )
    if ttfd:
        body += (
            "\n\nTime to first draw in a fresh process with a warm compilation cache "
            "(100 warmup + 100 draws, seconds; target ratio <= 0.5):\n\n"
            + markdown_table(["posterior", "bayes", "NumPyro", "ratio"], ttfd)
        )
    else:
        body += "\n\nTime to first draw: see the next section (`--ttfd-only`)."
    print(body)
    if not args.no_write:
        write_section("mcmc", "NUTS: bayes vs NumPyro vs BlackJAX", body)


if __name__ == "__main__":
    main()
