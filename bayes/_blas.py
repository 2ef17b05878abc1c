"""One BLAS/LAPACK thread for work on small matrices.

JAX's CPU linear algebra (Cholesky, triangular solves, eigh) calls the
OpenBLAS that SciPy ships. When the cores are shared with other processes its
worker threads spin against them: a 50 x 50 triangular solve took 15-20 ms
instead of 40 us on a loaded 2-core machine. Matrices of a few hundred rows
gain nothing from threads, so code that only factorizes such matrices wraps
itself in :func:`serial_blas`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["serial_blas"]


@contextlib.contextmanager
def serial_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (no-op without ``threadpoolctl``)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
