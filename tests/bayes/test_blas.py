import jax.numpy as jnp
import numpy as np
import pytest

from bayes._blas import serial_blas

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    jnp.linalg.cholesky(jnp.eye(2)).block_until_ready()  # loads JAX's LAPACK provider
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if set(_blas_threads()) != {2}:
            pytest.skip("this BLAS cannot run two threads")
        yield


def test_serial_blas_limits_inside_and_restores_after(two_blas_threads):
    a = jnp.eye(300) * 2.0 + 0.01
    with serial_blas():
        assert set(_blas_threads()) == {1}
        # dispatched asynchronously; the block waits for it before restoring
        chol = jnp.linalg.cholesky(a)
    assert set(_blas_threads()) == {2}
    assert chol.is_ready()
    np.testing.assert_allclose(chol @ chol.T, a, rtol=1e-5, atol=1e-5)


def test_serial_blas_restores_after_an_error(two_blas_threads):
    with pytest.raises(ValueError, match="boom"), serial_blas():
        raise ValueError("boom")
    assert set(_blas_threads()) == {2}
