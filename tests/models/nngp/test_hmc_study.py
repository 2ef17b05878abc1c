"""Paired HMC vs type-II ML study (``bayes.models.nngp.hmc_study``)."""

from __future__ import annotations

import numpy as np
import pytest
from bayes.models.nngp.hmc_study import compare_hmc_type2, summarize_pairs


def test_summarize_pairs_matches_hand_computation():
    runs = [{"d": [1.0, 3.0]}, {"d": [-1.0, 0.0, 1.0]}, {"d": [2.0]}]
    got = summarize_pairs(runs, "d")
    pooled = np.array([1.0, 3.0, -1.0, 0.0, 1.0, 2.0])
    means = np.array([2.0, 0.0, 2.0])
    assert got["mean"] == pytest.approx(1.0)
    assert got["se_points"] == pytest.approx(pooled.std(ddof=1) / np.sqrt(6))
    assert got["se_splits"] == pytest.approx(means.std(ddof=1) / np.sqrt(3))
    assert got["wins"] == 2 and got["splits"] == 3
    assert np.isnan(summarize_pairs(runs[:1], "d")["se_splits"])


def test_study_pairs_every_test_point_and_resumes_from_its_cache(tmp_path):
    kw = dict(
        datasets=("diabetes",), train_sizes=(20,), seeds=(0,), max_eval=30, num_steps=20,
        num_warmup=30, num_samples=30, cache=tmp_path / "jobs.jsonl",
    )  # fmt: skip
    lines = []
    out = compare_hmc_type2(**kw, log=lines.append)
    cell = out["diabetes/n=20"]
    (run,) = cell["runs"]
    # diabetes has 442 rows: 10% = 44 test points, under the cap of 30 -> 30
    assert len(run["nll_diff"]) == len(run["se_diff"]) == 30
    assert cell["nll"]["mean"] == pytest.approx(run["ml_nll"] - run["hmc_nll"])
    assert np.isfinite(run["hmc_nll"]) and np.isfinite(run["ml_nll"])
    assert len(lines) == 1
    again = compare_hmc_type2(**kw, log=lines.append)
    assert len(lines) == 1  # nothing recomputed
    assert again["diabetes/n=20"]["runs"] == cell["runs"]
