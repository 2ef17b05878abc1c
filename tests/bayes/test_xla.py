"""The jaxlib 0.10 CPU deadlock workaround (``bayes._xla``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bayes import _xla

# Two independent vmapped triangular solves of the same factors: with jaxlib
# 0.10's default scheduling both start together on the 2 pool threads of a
# 2-core machine, each waits for its batch pieces, and nothing runs them.
_TWO_SOLVES = """
import bayes, jax, jax.numpy as jnp, numpy as np
from jax.scipy.linalg import solve_triangular
jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(0)
a = rng.normal(size=(256, 100, 100))
chol = np.linalg.cholesky(a @ a.transpose(0, 2, 1) + 100 * np.eye(100))
b1, b2 = rng.normal(size=(256, 100, 30)), rng.normal(size=(256, 100, 1))

@jax.jit
def solve(chol, b1, b2):
    one = lambda c: (solve_triangular(c[0], c[1], lower=True),
                     solve_triangular(c[0], c[2], lower=True))
    return jax.lax.map(one, (chol, b1, b2), batch_size=64)

for _ in range(20):
    x1, x2 = jax.block_until_ready(solve(chol, b1, b2))
np.testing.assert_allclose(np.einsum("bij,bjk->bik", chol, x1), b1, atol=1e-10)
np.testing.assert_allclose(np.einsum("bij,bjk->bik", chol, x2), b2, atol=1e-10)
print("solved")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _xla._ENV_KEEP)}
    return {**env, **extra}


def _flags_after_import(env: dict[str, str]) -> str:
    code = "import os, bayes; print(os.environ.get('XLA_FLAGS', ''))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_adds_the_flag_and_keeps_the_users_choice():
    assert _flags_after_import(_env()) == _xla.FLAG
    mine = "--xla_force_host_platform_device_count=2"
    assert _flags_after_import(_env(XLA_FLAGS=mine)) == f"{mine} {_xla.FLAG}"
    chosen = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert _flags_after_import(_env(XLA_FLAGS=chosen)) == chosen
    assert _flags_after_import(_env(BAYES_KEEP_XLA_SCHEDULER="1")) == ""


@pytest.mark.timeout(300)
def test_concurrent_batched_solves_finish_after_importing_bayes():
    # without the flag this hangs on 2 cores (jaxlib 0.10.2); the subprocess
    # timeout turns a hang into a failure instead of a stuck suite
    out = subprocess.run(
        [sys.executable, "-c", _TWO_SOLVES], env=_env(JAX_PLATFORMS="cpu"),
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("solved")
