"""Resampling helpers (the laws of the schemes are tested in test_smc_conditional_law)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.smc import resampling

WEIGHTS = np.array([0.05, 0.3, 0.02, 0.23, 0.15, 0.25])


def test_ess_and_normalise() -> None:
    logw = jnp.log(jnp.asarray(WEIGHTS)) + 3.0
    w, log_mean = resampling.log_normalise(logw)
    np.testing.assert_allclose(np.asarray(w), WEIGHTS, rtol=1e-5)
    np.testing.assert_allclose(float(log_mean), 3.0 - np.log(6), rtol=1e-5)
    np.testing.assert_allclose(float(resampling.ess(logw)), 1 / np.sum(WEIGHTS**2), rtol=1e-5)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown resampling scheme 'bogus'"):
        resampling.get_scheme("bogus")
