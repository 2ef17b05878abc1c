"""Work around a deadlock of jaxlib 0.10's CPU LAPACK kernels on few cores.

Since jaxlib 0.10 a batched LAPACK call on the CPU (``vmap`` of
``solve_triangular``, ``cho_solve``, ...) splits its batch over XLA's intra-op
thread pool, which has one thread per core, and blocks its own thread until
the pieces are done. XLA's default scheduler runs independent operations
concurrently on that same pool, so when as many independent batched solves
become ready together as there are pool threads, every thread waits for work
that no thread is left to run: the process hangs in ``block_until_ready``. On
2 cores two solves of the same Cholesky factor are enough (two 64-batched
triangular solves of 100 x 100 factors hang reliably).

XLA's memory-ordered scheduler (``--xla_cpu_enable_concurrency_optimized_scheduler=false``)
issues such solves together far less often, at no measurable cost on our samplers,
but it is a mitigation, not a cure: a long run of the ``nngp-hmc`` study still hung
once with it. Code of ours that ran many batched solves side by side (the nngp
predictive over posterior draws, the wide-network ensemble) therefore maps over
its draws one at a time instead of in ``vmap`` batches; unbatched LAPACK calls do
not split and cannot wait on the pool.

:func:`apply` adds the flag to ``XLA_FLAGS`` when ``bayes`` is imported, before
JAX reads the variable at its first computation. It leaves the variable alone
when the user set the flag either way and when ``$BAYES_KEEP_XLA_SCHEDULER`` is
set. (jaxlib 0.9.2 does not split batches and does not hang, but bayes requires
jaxlib 0.10, so the version is not checked: reading package metadata would add
some 25 ms to ``import bayes`` and the CLI's start.) Importing ``bayes`` after
JAX has already computed something is too late for the flag to take effect.
"""

from __future__ import annotations

import os

__all__ = ["FLAG", "apply"]

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
_NAME = FLAG.split("=")[0]
_ENV_KEEP = "BAYES_KEEP_XLA_SCHEDULER"


def apply() -> bool:
    """Add :data:`FLAG` to ``$XLA_FLAGS`` unless the user decided otherwise.

    Returns:
        Whether the flag was added.
    """
    current = os.environ.get("XLA_FLAGS", "")
    if os.environ.get(_ENV_KEEP) or _NAME in current:
        return False
    os.environ["XLA_FLAGS"] = f"{current} {FLAG}".strip()
    return True
