"""One BLAS/LAPACK thread for work on small matrices.

JAX's CPU linear algebra (Cholesky, triangular solves, eigh) calls the
OpenBLAS that SciPy ships. When the cores are shared with other processes its
worker threads spin against them: a 50 x 50 triangular solve took 15-20 ms
instead of 40 us on a loaded 2-core machine. Matrices of a few hundred rows
gain nothing from threads, so code that only factorizes such matrices wraps
itself in :func:`serial_blas`.

OpenBLAS's thread count must not change while one of its calls runs on
another thread. JAX dispatches asynchronously, so a LAPACK call started before
the block (or inside it) may still run when the count is lowered (or
restored): the block waits for JAX's pending work at both ends.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["serial_blas"]


def _wait_for_jax() -> None:
    """Block until the computations behind every live JAX array have finished."""
    jax = sys.modules.get("jax")  # nothing to wait for if JAX was never imported
    if jax is not None:
        jax.block_until_ready(jax.live_arrays())


@contextlib.contextmanager
def serial_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block.

    Waits for pending JAX work on entry and on exit, so that the thread count
    never changes under a running BLAS call.
    """
    from threadpoolctl import threadpool_limits

    _wait_for_jax()
    limits = threadpool_limits(limits=1, user_api="blas")
    try:
        yield
        _wait_for_jax()
    finally:
        limits.restore_original_limits()
