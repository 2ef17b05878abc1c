"""Test configuration shared by the whole suite.

- JAX runs on the CPU (``JAX_PLATFORMS=cpu`` is set before JAX is imported).
- JAX's persistent compilation cache is on (``$BAYES_CACHE_DIR`` overrides
  its folder), so a second run of the suite skips compilation.
- ``--x64`` (or ``BAYES_TEST_X64=1``) runs the whole suite in 64-bit JAX; the
  ``x64`` fixture turns it on for one test.
- Every test starts from fixed seeds: ``rng_key`` and ``np_rng`` fixtures,
  and the global NumPy/``random`` seeds reset before each test.
- ``slow`` marks long statistical runs; they still run in CI.
- OpenBLAS runs one thread (``OPENBLAS_NUM_THREADS=1`` unless set).
- ``bayes`` is imported before JAX computes anything, so its jaxlib 0.10
  deadlock workaround (``bayes._xla``) is in ``XLA_FLAGS`` for every test; a
  test that hangs anyway ends the run after 900 s with all stacks printed.
- Compiled programs are released after each test module (see
  ``_release_compiled_programs``).
"""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("BAYES_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
# One OpenBLAS thread from the start. Code under test (bayes._blas.serial_blas)
# lowers and restores the thread count around its work, and changing it while
# an asynchronously dispatched JAX computation may still be in a LAPACK call is
# not safe; with one thread from the start there is nothing to change.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

SEED = 20261122


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--x64", action="store_true", help="run JAX in 64-bit mode")


def pytest_configure(config: pytest.Config) -> None:
    import jax

    import bayes  # noqa: F401  (sets XLA_FLAGS before JAX's first computation)
    from bayes.config import enable_compilation_cache

    enable_compilation_cache()
    if config.getoption("--x64") or os.environ.get("BAYES_TEST_X64") == "1":
        jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    np.random.seed(SEED % 2**32)
    random.seed(SEED)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after a test module.

    XLA:CPU maps each loaded executable into about 18 memory regions, and the
    kernel caps a process at ``vm.max_map_count`` (65530) of them. The whole
    suite in one process loads thousands of programs; without this, XLA
    crashed (de)serializing a program for the persistent cache late in the
    run, when it could not map more memory.
    """
    yield
    jax = sys.modules.get("jax")
    if jax is None:
        return
    sampling = sys.modules.get("bayes.sampling")
    if sampling is not None:
        sampling.clear_cache()
    else:
        jax.clear_caches()


@pytest.fixture
def rng_key():
    """A fixed JAX PRNG key."""
    import jax

    return jax.random.key(SEED)


@pytest.fixture
def np_rng() -> np.random.Generator:
    """A fixed NumPy generator."""
    return np.random.default_rng(SEED)


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX."""
    import jax

    with jax.enable_x64(True):
        yield
