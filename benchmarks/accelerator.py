"""The JAX layers on an accelerator: the same code on a GPU and on the same host's CPU.

Usage:
    python benchmarks/accelerator.py --out results.json [--parts mcmc smc nngp]
                                     [--platforms cuda cpu] [--quick]
    python benchmarks/accelerator.py --report results.json   # write the docs section

Each part runs in a child process per platform (``JAX_PLATFORMS``), so one run gives
GPU and CPU numbers from the same machine. Results are appended to the JSON file as
they come, so a run stopped at a time limit keeps what it measured. A platform
with no device here is skipped with a message. (So far this script has run on
CPU only: no accelerator was lent to the sessions that wrote it, and
docs/benchmarks.md has no section from it yet.)

* ``mcmc``: ``bayes.sample(method="chees")`` (many chains adapted jointly, the
  accelerator-friendly method) and ``method="nuts"`` on a 100-dimensional Gaussian
  with correlation 0.9 and on posteriordb's eight schools (non-centred; set
  ``BAYES_POSTERIORDB`` where ``../shared`` is absent), for growing numbers of
  chains: compile, warmup and sampling seconds, minimum bulk ESS and ESS per second.
* ``smc``: the bootstrap particle filter and PaRIS (exact O(N^2) and MH O(N)
  backward draws) on a scalar linear Gaussian model, for growing T and N: run seconds
  (fastest of 3, compile excluded) and peak device memory.
* ``nngp``: the ReLU NNGP kernel matrix (float64) and the Gaussian posterior
  predictive at 1000 test points, for growing n.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _best(fn, repeats: int = 3):
    import jax

    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return out, best


def _peak_bytes() -> float | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


# ----------------------------------------------------------------------------- mcmc


def part_mcmc(quick: bool, platform: str):
    import arviz as az
    from mcmc import gaussian_target, load

    import bayes

    # eight schools from posteriordb (on a machine without ../shared, point
    # BAYES_POSTERIORDB at a copy carried along)
    targets = {
        "gauss100": gaussian_target(),
        "eight_schools": load("eight_schools-eight_schools_noncentered"),
    }
    warmup, draws = (200, 200) if quick else (500, 500)
    grid = [("chees", c) for c in ((16, 128) if quick else (16, 128, 1024, 4096))]
    grid += [("nuts", c) for c in ((4,) if quick else (4, 128))]
    for name, (model, data) in targets.items():
        for method, chains in grid:
            if platform == "cpu" and chains > 128:
                continue
            t0 = time.perf_counter()
            idata = bayes.sample(
                model,
                data,
                method=method,
                num_chains=chains,
                num_warmup=warmup,
                num_samples=draws,
                seed=1,
                progress=False,
            )
            total = time.perf_counter() - t0
            latent = [v for v in idata.posterior.data_vars if v != "theta"]
            ess = az.ess(idata.posterior[latent], method="bulk")
            min_ess = float(min(float(ess[v].min()) for v in latent))
            attrs = idata.posterior.attrs
            sampling = float(attrs["sampling_s"])
            yield {
                "part": "mcmc",
                "target": name,
                "method": method,
                "num_chains": chains,
                "num_warmup": warmup,
                "num_samples": draws,
                "compile_s": float(attrs["compile_s"]),
                "warmup_s": float(attrs["warmup_s"]),
                "sampling_s": sampling,
                "total_s": total,
                "min_ess_bulk": min_ess,
                "ess_per_s": min_ess / sampling,
                "divergences": int(idata.sample_stats["diverging"].sum()),
            }


# ----------------------------------------------------------------------------- smc


def _lgssm(num_steps: int):
    import jax
    import jax.numpy as jnp
    from bayes.models import ssm

    phi, q, r = 0.8, 1.0, math.exp(-0.6)
    theta = {
        "A": jnp.full((1, 1), phi),
        "Q": jnp.full((1, 1), q),
        "C": jnp.ones((1, 1)),
        "R": jnp.full((1, 1), r),
        "m0": jnp.zeros(1),
        "P0": jnp.full((1, 1), q / (1 - phi**2)),
    }
    model = ssm.linear_gaussian_ssm(None)
    _, ys = ssm.simulate(jax.random.key(3), theta, num_steps)
    return model, theta, ys


def part_smc(quick: bool, platform: str):
    # Sizes grow within each kind, so the allocator's running peak after a case is
    # that case's peak unless an earlier, smaller one set it.
    cases = [("filter", 10_000, 1_000), ("paris-exact", 1_000, 100), ("paris-mcmc", 1_000, 100)]
    if not quick:
        cases = [
            ("filter", 10_000, 1_000),
            ("filter", 100_000, 1_000),
            ("filter", 100_000, 10_000),
            ("paris-mcmc", 1_000, 100),
            ("paris-mcmc", 10_000, 1_000),
            ("paris-mcmc", 100_000, 1_000),
            ("paris-exact", 1_000, 100),
            ("paris-exact", 1_000, 1_000),
            ("paris-exact", 10_000, 1_000),
        ]
    for kind, num_steps, n in cases:
        if platform == "cpu" and num_steps * n > 10**8 and kind != "filter":
            continue
        yield _smc_case(kind, num_steps, n)


def _smc_case(kind: str, num_steps: int, n: int) -> dict:
    import jax
    from bayes.inference.smc import paris, run_filter

    model, theta, ys = _lgssm(num_steps)

    def h(xp, x, t):
        return xp[0] * x[0]

    def run(key):
        if kind == "filter":
            return run_filter(model, theta, ys, rng_key=key, num_particles=n).log_likelihood
        return paris.run_paris(
            model, theta, ys, h, rng_key=key, num_particles=n, num_backward=2,
            backward=kind.split("-")[1],
        ).estimate  # fmt: skip

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    keys = iter(jax.random.split(jax.random.key(1), 10))
    value, run_s = _best(lambda: compiled(next(keys)))
    return {
        "part": "smc",
        "kind": kind,
        "num_steps": num_steps,
        "num_particles": n,
        "compile_s": compile_s,
        "run_s": run_s,
        "value": float(value),
        "peak_mib": _peak_bytes(),
    }


# ----------------------------------------------------------------------------- nngp


def part_nngp(quick: bool, platform: str):
    import jax

    jax.config.update("jax_enable_x64", True)
    sizes = (1000, 5000) if quick else (1000, 5000, 10_000, 20_000)
    for n in sizes:
        if platform == "cpu" and n > 10_000:
            continue
        yield _nngp_case(n)


def _nngp_case(n: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from bayes.models.nngp import gaussian_predict, gp_fit, kernel_diag, kernel_matrix

    kw = dict(weight_variance=2.0, bias_variance=0.1, depth=3)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, 8)))
    xt = jnp.asarray(rng.standard_normal((1000, 8)))
    y = jnp.sin(x[:, 0]) + 0.1 * jnp.asarray(rng.standard_normal(n))

    def kernel(a, b=None):
        return kernel_matrix(a, b, block_size=2048, **kw)

    def predict(x, y, xt):
        fit = gp_fit(kernel(x), y, noise_variance=0.1, jitter=0.0)
        return gaussian_predict(fit, kernel(x, xt), kernel_diag(xt, **kw))

    t0 = time.perf_counter()
    kernel_fn = jax.jit(kernel).lower(x).compile()
    predict_fn = jax.jit(predict).lower(x, y, xt).compile()
    compile_s = time.perf_counter() - t0
    _, kernel_s = _best(lambda: kernel_fn(x))
    (mean, var), predict_s = _best(lambda: predict_fn(x, y, xt))
    finite = np.isfinite(np.asarray(mean)).all() and np.isfinite(np.asarray(var)).all()
    return {
        "part": "nngp",
        "n": n,
        "compile_s": compile_s,
        "kernel_s": kernel_s,
        "predict_s": predict_s,
        "finite": bool(finite),
        "peak_mib": _peak_bytes(),
    }


PARTS = {"mcmc": part_mcmc, "smc": part_smc, "nngp": part_nngp}


# ----------------------------------------------------------------------------- driver


def _child(part: str, platform: str, quick: bool, out: str) -> None:
    import jax

    device = str(jax.devices()[0].device_kind)
    for row in PARTS[part](quick, platform):
        row.update(platform=platform, device=device)
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def _has_platform(platform: str) -> bool:
    probe = [sys.executable, "-c", "import jax; jax.devices()"]
    env = {**os.environ, "JAX_PLATFORMS": platform}
    return subprocess.run(probe, env=env, capture_output=True).returncode == 0


def _describe() -> dict:
    import platform as pf

    info = {"python": pf.python_version(), "cpus": os.cpu_count()}
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        info["gpu"] = smi.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["gpu"] = None
    from importlib.metadata import version

    for pkg in ("jax", "jaxlib", "numpyro", "blackjax"):
        try:
            info[pkg] = version(pkg)
        except Exception:  # a missing package is reported as None
            info[pkg] = None
    return info


def report(path: str) -> None:
    from _report import markdown_table, write_section

    lines = [json.loads(s) for s in Path(path).read_text().splitlines() if s.strip()]
    info = next(r for r in lines if r.get("part") == "machine")
    rows = [r for r in lines if r.get("part") != "machine"]
    host = (
        f"{info['gpu']}; {info['cpus']} CPU cores on the same host; Python {info['python']}; "
        f"jax {info['jax']}, numpyro {info['numpyro']}, blackjax {info['blackjax']}"
    )

    def pick(part, key):
        return {(tuple(r[k] for k in key), r["platform"]): r for r in rows if r["part"] == part}

    body = [f"Measured on: {host}. Each platform ran in its own process (`JAX_PLATFORMS`).\n"]
    mc = pick("mcmc", ("target", "method", "num_chains"))
    keys = sorted({k for k, _ in mc}, key=lambda k: (k[0], k[1], k[2]))
    table = []
    for k in keys:
        g, c = mc.get((k, "cuda")), mc.get((k, "cpu"))
        table.append([
            *k,
            *(f"{r['compile_s']:.1f}" if r else "-" for r in (g, c)),
            *(f"{r['sampling_s']:.2f}" if r else "-" for r in (g, c)),
            *(f"{r['min_ess_bulk']:.0f}" if r else "-" for r in (g, c)),
            *(f"{r['ess_per_s']:.0f}" if r else "-" for r in (g, c)),
            f"{g['ess_per_s'] / c['ess_per_s']:.1f}" if g and c else "-",
        ])  # fmt: skip
    if table:
        r0 = next(iter(mc.values()))
        body.append(
            f"**MCMC** (`bayes.sample`, {r0['num_warmup']} warmup + {r0['num_samples']} draws per "
            "chain, float32; ESS is the minimum bulk ESS over latent coordinates; ESS/s counts "
            "the sampling phase):\n\n"
            + markdown_table(
                [
                    "target",
                    "method",
                    "chains",
                    "compile GPU s",
                    "compile CPU s",
                    "sampling GPU s",
                    "sampling CPU s",
                    "ESS GPU",
                    "ESS CPU",
                    "ESS/s GPU",
                    "ESS/s CPU",
                    "GPU/CPU",
                ],
                table,
            )
        )
    for part, key, cols in (
        ("smc", ("kind", "num_steps", "num_particles"), ("run_s", "compile_s", "peak_mib")),
        ("nngp", ("n",), ("kernel_s", "predict_s", "compile_s", "peak_mib")),
    ):
        got = pick(part, key)
        ks = sorted({k for k, _ in got})
        table = []
        for k in ks:
            g, c = got.get((k, "cuda")), got.get((k, "cpu"))
            row = list(k)
            for col in cols:
                for r in (g, c):
                    v = r.get(col) if r else None
                    row.append("-" if v is None else f"{v:.3g}")
            main = cols[0] if part == "smc" else "predict_s"
            row.append(f"{c[main] / g[main]:.1f}" if g and c else "-")
            table.append(row)
        if table:
            heads = [f"{col} {p}" for col in cols for p in ("GPU", "CPU")]
            title = (
                "**SMC** (scalar linear Gaussian model, K = 2 backward draws; fastest of 3 runs, "
                "compile excluded; `peak_mib`: the GPU allocator's running peak after the case, "
                "cases in the order listed):"
                if part == "smc"
                else "**NNGP** (ReLU, depth 3, float64, 1000 test points; fastest of 3):"
            )
            body.append(title + "\n\n" + markdown_table([*key, *heads, "CPU/GPU"], table))
    text = "\n\n".join(body)
    print(text)
    write_section("accelerator", "The JAX layers on a GPU", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="accelerator.jsonl")
    parser.add_argument("--parts", nargs="*", default=list(PARTS))
    parser.add_argument("--platforms", nargs="*", default=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", metavar="JSONL", help="write the docs section from a run")
    parser.add_argument("--child", nargs=2, metavar=("PART", "PLATFORM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        return report(args.report)
    if args.child:
        return _child(*args.child, args.quick, args.out)
    with open(args.out, "a") as f:
        f.write(json.dumps({"part": "machine", **_describe()}) + "\n")
    for part in args.parts:
        for platform in args.platforms:
            if platform != "cpu" and not _has_platform(platform):
                print(f"{part}: no {platform} device here, skipped", file=sys.stderr)
                continue
            env = {**os.environ, "JAX_PLATFORMS": platform}
            cmd = [sys.executable, __file__, "--child", part, platform, "--out", args.out]
            cmd += ["--quick"] if args.quick else []
            done = subprocess.run(cmd, env=env)
            if done.returncode:
                print(f"{part} on {platform}: exit {done.returncode}", file=sys.stderr)


if __name__ == "__main__":
    main()
