"""The registered NIW experiments run end to end in quick mode and report sane figures."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from bayes.experiments import run_experiment


@pytest.mark.slow
def test_niw_sine_quick(tmp_path: Path) -> None:
    record = run_experiment("niw-sine", quick=True, out=tmp_path, progress=False)
    res = record["results"]["sine-5shot"]
    assert set(res) == {"NIW", "MAML", "Reptile"}
    # Predicting 0 scores E[A^2]/2 = 4.25 on average; all methods must beat twice that
    # even after 200 meta-iterations, and report finite, well-formed figures.
    for method, scores in res.items():
        assert math.isfinite(scores["mse"]) and scores["mse"] < 8.5, (method, scores["mse"])
        assert math.isfinite(scores["nll"]), method
        assert 0.0 <= scores["calibration_error"] <= 0.95
        cov = scores["coverage"]
        assert all(a <= b + 1e-6 for a, b in itertools.pairwise(cov)), (method, cov)
        assert scores["seconds_per_iteration"] > 0
        # Every method's predictive noise is fitted on held-out tasks: variance = error there.
        assert scores["noise_scale"] > 0, method
    assert res["NIW"]["learned_noise_scale"] > 0
    assert math.isfinite(res["NIW"]["nll_learned_noise"])
    assert {"sine-5shot-fits.png", "sine-5shot-calibration.png"} <= set(record["figures"])
    assert all((tmp_path / f).exists() for f in record["figures"])


@pytest.mark.slow
def test_niw_digits_quick(tmp_path: Path) -> None:
    record = run_experiment("niw-digits", quick=True, out=tmp_path, progress=False)
    res = record["results"]["5way-5shot"]
    assert set(res) == {"NIW", "MAML", "ProtoNet"}
    assert record["results"]["split"]["test_digits"] == [7, 8, 9]
    # Unseen digits, 100 test tasks: every method must beat chance (0.2) beyond its CI.
    for method, scores in res.items():
        assert scores["accuracy"] - scores["accuracy_ci95"] > 0.2, (method, scores)
        assert 0.0 <= scores["ece"] <= 1.0
    assert (tmp_path / "digits.png").exists()
