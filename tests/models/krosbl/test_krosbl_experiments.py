"""KroSBL experiments in quick mode: the claims they measure, and the IRS simulator."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from bayes.models import krosbl

from bayes.experiments import run_experiment


def test_irs_measurements_match_explicit_channel_product(x64) -> None:
    config = krosbl.IRSConfig(
        num_ms=3, num_bs=4, num_irs=10, grid=6, num_pilots=2, num_patterns=3, cluster_size=2
    )
    p = krosbl.simulate_irs(200.0, rng_key=jax.random.key(0), config=config)
    explicit = np.asarray(krosbl.irs_physical_measurements(p))
    assert explicit.shape == (3, 2, 4)
    # y = (Phi_1 kron Phi_2 kron Phi_3) z against H_2 diag(theta_k) H_1 X, noise at 200 dB.
    np.testing.assert_allclose(p.y, explicit.ravel(), atol=1e-8 * np.abs(explicit).max())
    dense = np.asarray(krosbl.kron_dense(p.factors)) @ np.asarray(p.z)
    np.testing.assert_allclose(dense, explicit.ravel(), atol=1e-10 * np.abs(explicit).max())
    # Support: cluster x one MS angle x cluster.
    assert int(p.support.sum()) == 4
    # Perfect channel knowledge at high SNR detects every symbol.
    assert float(krosbl.symbol_error_rate(p.z, p, rng_key=jax.random.key(1), config=config)) == 0


def test_synthetic_quick_reproduces_the_ordering(tmp_path: Path) -> None:
    record = run_experiment("krosbl-synthetic", quick=True, out=tmp_path, progress=False)
    res = record["results"]["snr_sweep"]
    svd, classic = res["svd"], res["classic"]
    # At 30 dB the Kronecker prior recovers the 8-sparse signal almost exactly ...
    assert svd["median_nmse"][-1] < 1e-3
    assert svd["support_rate"][-1] >= classic["support_rate"][-1]
    # ... and SVD-KroSBL beats classic SBL at every SNR while running faster.
    assert all(s < c for s, c in zip(svd["median_nmse"], classic["median_nmse"]))
    assert svd["run_s_per_trial"] < classic["run_s_per_trial"]
    assert (tmp_path / "krosbl_synthetic.png").exists()
