"""NNGP kernel matrix and posterior prediction: bayes (JAX) vs a NumPy/SciPy reference.

Both sides compute the same thing in float64: the ReLU NNGP kernel of a
3-hidden-layer network on ``n`` training inputs in ``R^8`` (row blocks of 1024),
then the Gaussian posterior predictive at ``m = 1000`` test inputs through a
Cholesky factorization (train kernel, Cholesky, cross kernel, mean and variance).
Every (implementation, n) runs in its own subprocess, so the reported peak
resident memory (``ru_maxrss``) is that of the one computation plus the
interpreter; JAX compile time is measured separately (ahead-of-time
``lower().compile()``) and excluded from the run time.

Usage::

    python benchmarks/nngp.py  # n = 1000, 5000, 10000; writes docs/benchmarks.md
    python benchmarks/nngp.py --sizes 1000 2000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DEPTH, WV, BV, NOISE, D, M, BLOCK = 3, 2.0, 0.1, 0.1, 8, 1000, 1024
NOTE = (
    "The kernel meets the 5x target at n = 5000; prediction does not: after the "
    "kernels it is the O(n^3) Cholesky and the O(n^2 m) triangular solve for the "
    "variances, LAPACK calls into the same OpenBLAS on both sides, so the ratio "
    "is bounded by their share of the time. A float32 factorization with float64 "
    "refinement of the mean would cut that share but not the variance solve; it "
    "is not implemented."
)


def _data(n: int):
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((n, D)), rng.standard_normal((M, D))
    y = np.sin(x[:, 0]) + 0.1 * rng.standard_normal(n)
    return x, y, xt


# ----------------------------------------------------------------------------- reference


def _np_diags(x):
    k = WV * np.einsum("ij,ij->i", x, x) / x.shape[1] + BV
    out = [k]
    for _ in range(DEPTH):
        k = WV * k / 2 + BV
        out.append(k)
    return out


def np_kernel(x1, x2):
    """NumPy reference of the ReLU NNGP recursion (row blocks to bound temporaries)."""
    d1, d2 = _np_diags(x1), _np_diags(x2)
    out = np.empty((len(x1), len(x2)))
    for start in range(0, len(x1), BLOCK):
        sl = slice(start, start + BLOCK)
        k = WV * x1[sl] @ x2.T / x1.shape[1] + BV
        for layer in range(DEPTH):
            norm = np.sqrt(np.outer(d1[layer][sl], d2[layer]))
            rho = np.clip(k / norm, -1.0, 1.0)
            theta = np.arccos(rho)
            k = WV * norm * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi) + BV
        out[sl] = k
    return out


def np_predict(x, y, xt):
    from scipy.linalg import cho_factor, cho_solve, solve_triangular

    k = np_kernel(x, x)
    k[np.diag_indices_from(k)] += NOISE
    chol, lower = cho_factor(k, lower=True, overwrite_a=True, check_finite=False)
    alpha = cho_solve((chol, lower), y, check_finite=False)
    kc = np_kernel(x, xt)
    mean = kc.T @ alpha
    w = solve_triangular(chol, kc, lower=True, check_finite=False)
    var = _np_diags(xt)[-1] + NOISE - np.einsum("ij,ij->j", w, w)
    return mean, var


# ----------------------------------------------------------------------------- worker


class _Clock:
    """Wall and process CPU seconds of a block (CPU time is robust to other jobs' load)."""

    def __init__(self, result: dict, name: str):
        self.result, self.name = result, name

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.result[self.name + "_s"] = time.perf_counter() - self.t0
        self.result[self.name + "_cpu_s"] = time.process_time() - self.c0


def _worker(impl: str, n: int, kernel_only: bool) -> dict:
    x, y, xt = _data(n)
    result: dict = {"impl": impl, "n": n}
    if impl == "numpy":
        with _Clock(result, "kernel"):
            k = np_kernel(x, x)
        if kernel_only:
            result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            np.save(f"/tmp/nngp_bench_{impl}_{n}.npy", k[::97, ::89])
            return result
        del k
        with _Clock(result, "predict"):
            mean, var = np_predict(x, y, xt)
    else:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from bayes.models.nngp import gaussian_predict, gp_fit, kernel_diag, kernel_matrix

        kw = dict(weight_variance=WV, bias_variance=BV, depth=DEPTH, block_size=BLOCK)

        def predict(x, y, xt):
            fit = gp_fit(kernel_matrix(x, **kw), y, noise_variance=NOISE, jitter=0.0)
            kd = kernel_diag(xt, **{k: v for k, v in kw.items() if k != "block_size"})
            return gaussian_predict(fit, kernel_matrix(x, xt, **kw), kd)

        xj, yj, xtj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(xt)
        t0 = time.perf_counter()
        kernel_fn = jax.jit(lambda a: kernel_matrix(a, **kw)).lower(xj).compile()
        if not kernel_only:
            predict_fn = jax.jit(predict).lower(xj, yj, xtj).compile()
        result["compile_s"] = time.perf_counter() - t0
        with _Clock(result, "kernel"):
            k = jax.block_until_ready(kernel_fn(xj))
        if kernel_only:
            result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            np.save(f"/tmp/nngp_bench_{impl}_{n}.npy", np.asarray(k)[::97, ::89])
            return result
        del k
        with _Clock(result, "predict"):
            mean, var = jax.block_until_ready(predict_fn(xj, yj, xtj))
        mean, var = np.asarray(mean)[:, 0], np.asarray(var)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(f"/tmp/nngp_bench_{impl}_{n}.npy", np.stack([mean, var]))
    return result


def _run(impl: str, n: int, kernel_only: bool = False) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", impl, str(n), str(int(kernel_only))],
        capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument(
        "--kernel-only-sizes", type=int, nargs="*", default=[],
        help="sizes at which only the n x n kernel matrix is timed",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        impl, n, kernel_only = args.worker
        print(json.dumps(_worker(impl, int(n), bool(int(kernel_only)))))
        return

    rows = []
    load_before = os.getloadavg()
    jobs = [(n, False) for n in args.sizes] + [(n, True) for n in args.kernel_only_sizes]
    for n, kernel_only in jobs:
        ours, ref = _run("jax", n, kernel_only), _run("numpy", n, kernel_only)
        a, b = np.load(f"/tmp/nngp_bench_jax_{n}.npy"), np.load(f"/tmp/nngp_bench_numpy_{n}.npy")
        err = float(np.max(np.abs(a - b) / (1 + np.abs(b))))
        predict = (
            ["-", "-", "-", "-"]
            if kernel_only
            else [
                ours["predict_s"], ref["predict_s"], ref["predict_s"] / ours["predict_s"],
                ref["predict_cpu_s"] / ours["predict_cpu_s"],
            ]
        )  # fmt: skip
        row = [
            n, ours["kernel_s"], ref["kernel_s"], ref["kernel_s"] / ours["kernel_s"],
            ref["kernel_cpu_s"] / ours["kernel_cpu_s"], *predict,
            ours["compile_s"], ours["peak_rss_mb"], ref["peak_rss_mb"], err,
        ]  # fmt: skip
        rows.append(row)
        print(" ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row), flush=True)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _report import markdown_table, write_section

    header = [
        "n", "kernel bayes (s)", "kernel NumPy (s)", "speed-up", "speed-up (CPU time)",
        "predict bayes (s)", "predict NumPy/SciPy (s)", "speed-up", "speed-up (CPU time)",
        "JAX compile (s)", "peak RSS bayes (MB)",
        "peak RSS NumPy (MB)", "max rel. diff",
    ]  # fmt: skip
    table = markdown_table(header, rows)
    before, after = ("/".join(f"{v:.1f}" for v in la) for la in (load_before, os.getloadavg()))
    load = f"load average (1/5/15 min) {before} before and {after} after"
    print(table, load, sep="\n")
    if not args.no_write:
        body = (
            "ReLU NNGP kernel (3 hidden layers, inputs in R^8, float64, row blocks of 1024) "
            "of n training points, and the Gaussian posterior predictive at 1000 test points "
            "(kernel, Cholesky, solves; the predict column includes its kernel matrices). "
            "Each cell is one run in a fresh subprocess; peak RSS includes the interpreter. "
            "JAX compile time is excluded from the run times and listed separately. "
            "Speed-up = NumPy time / bayes time, from wall-clock and from process CPU time "
            "(CPU time is less sensitive to other jobs on the machine, and equal to wall time "
            "for single-threaded work); '-' marks sizes where only the kernel "
            "matrix was timed. The ReLU arc-cosine uses a polynomial arccos (XLA's "
            "element-wise arccos was the kernel's main cost) and k(x, x) is built from the "
            "tiles on and below the block diagonal; the NumPy reference computes the full "
            f"matrix with np.arccos. Machine {load}.\n\n" + table + "\n\n" + NOTE
        )
        write_section(
            "nngp", "NNGP kernels and prediction (bayes.models.nngp vs NumPy/SciPy)", body
        )


if __name__ == "__main__":
    main()
