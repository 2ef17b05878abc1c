"""The vi-vae experiment reproduces the IWAE claims (Burda et al. 2016) at quick size."""

from __future__ import annotations

import pytest

from bayes.experiments import run_experiment


@pytest.mark.slow
def test_vi_vae_quick_reproduces_the_iwae_claims(tmp_path):
    record = run_experiment("vi-vae", quick=True, out=tmp_path, progress=False)
    res = record["results"]
    assert (tmp_path / "vae_digits.png").exists() and record["figures"] == ["vae_digits.png"]
    for name in ("elbo", "iwelbo"):
        # Training moves the test bounds far above the untrained networks (~ -46 nats).
        assert res[name]["iwelbo"] > res["initial"]["iwelbo"] + 20
        assert res[name]["train_objective_end"] > res[name]["train_objective_start"]
        # The K-particle bound is tighter than the ELBO (Burda et al., Theorem 1).
        assert res[name]["iwelbo"] > res[name]["elbo"]
    # Training with the IWELBO gives the higher test log-likelihood bound, and the
    # ELBO-trained model the higher test ELBO (Burda et al. 2016, Table 1).
    assert res["iwelbo_minus_elbo_trained_test_bound"] > 0
    assert res["elbo"]["elbo"] > res["iwelbo"]["elbo"]
