"""The registered NNGP experiments in quick mode, checking the claims they measure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayes.experiments import RunContext, registry, run_experiment


class _Killed(Exception):
    """Stands for a run killed after its last job, before results.json."""


def _run_killed_then_resumed(name, out, monkeypatch, num_jobs):
    """Run ``name`` (quick) until its plot, then again: the rerun must reuse every job."""

    def killed_at_plot(self, fig, filename):
        import matplotlib.pyplot as plt

        plt.close(fig)
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(RunContext, "savefig", killed_at_plot)
        with pytest.raises(_Killed):
            run_experiment(name, quick=True, out=out, progress=False)
    assert len(list((out / ".partial").glob("*.json"))) == num_jobs
    assert not (out / "results.json").exists()
    record = run_experiment(name, quick=True, out=out, progress=False)
    assert record["jobs"] == {"total": num_jobs, "reused": num_jobs}
    return record


def test_experiments_are_registered():
    names = registry()
    for name in (
        "nngp-regression", "nngp-regression-small", "nngp-ood", "nngp-wide-nets", "nngp-hmc"
    ):  # fmt: skip
        assert name in names
        assert names[name].module == "bayes.models.nngp.experiments"


@pytest.mark.slow
def test_regression_experiment_quick(tmp_path):
    record = run_experiment("nngp-regression", quick=True, out=tmp_path, progress=False)
    table = record["results"]["table"]
    assert set(table) == {
        "boston", "concrete", "diabetes", "synthetic-gaussian", "synthetic-heavy-tailed"
    }  # fmt: skip
    for name, row in table.items():
        nll = {f: row[f]["test_nll"] for f in row}
        rmse = {f: row[f]["test_rmse"] for f in row}
        assert all(np.isfinite(list(nll.values()))), name
        # Adam raised every model's marginal likelihood
        assert all(row[f]["fit_improved"] for f in row), name
        # standardized targets: every model must beat the prior predictive N(0, 1)
        assert max(rmse.values()) < 0.95, (name, rmse)
        # the scale mixtures contain the NNGP as a limit: fitted by marginal likelihood they
        # must not do clearly worse than it
        assert nll["inverse_gamma"] < nll["gaussian"] + 0.05, (name, nll)
        assert nll["burr_xii"] < nll["gaussian"] + 0.05, (name, nll)
    # heavy-tailed noise is harder to predict than Gaussian noise of the same scale
    assert (table["synthetic-heavy-tailed"]["gaussian"]["test_nll"]
            > table["synthetic-gaussian"]["gaussian"]["test_nll"])  # fmt: skip
    assert (tmp_path / "regression.png").exists()
    json.loads((tmp_path / "results.json").read_text())


@pytest.mark.slow
def test_small_n_regression_experiment_quick(tmp_path):
    """With 20 training points the scale mixtures beat the NNGP under heavy-tailed noise.

    The per-seed differences of test NLL (NNGP minus mixture) are paired; under t(2)
    noise they are themselves heavy tailed (one outlier-laden split gives most of the
    mean), so the claim is checked by the paired mean at one standard error and by a
    sign test: under "no difference" 9 or more wins of 10 has probability 0.011.
    """
    record = run_experiment("nngp-regression-small", quick=True, out=tmp_path, progress=False)
    res = record["results"]
    assert res["num_seeds"] == 10 and res["max_train"] == 20
    gains = res["paired_gain"]
    for family in ("inverse_gamma", "burr_xii"):
        heavy = gains["synthetic-heavy-tailed"][family]
        assert heavy["mean"] > heavy["se"] > 0, (family, heavy)
        assert heavy["wins"] >= 9, (family, heavy)
        # Gaussian noise: the mixtures tie with the NNGP (paired mean within 3 s.e.)
        control = gains["synthetic-gaussian"][family]
        assert abs(control["mean"]) < 3 * control["se"], (family, control)
        assert control["wins"] <= 8, (family, control)
    assert (tmp_path / "regression_small.png").exists()


@pytest.mark.slow
def test_ood_experiment_quick(tmp_path, monkeypatch):
    # one job per (split, model); the checks below run on the resumed record
    record = _run_killed_then_resumed("nngp-ood", tmp_path, monkeypatch, num_jobs=4)
    models = record["results"]["models"]
    for family in ("gaussian", "inverse_gamma", "svgp", "svtp"):
        corr = models[family]["corruption"]
        assert corr["0.0"]["accuracy"] > 0.9, family
        # corruption lowers accuracy and raises the NLL
        assert corr["2.0"]["accuracy"] < corr["0.0"]["accuracy"] - 0.2
        assert corr["2.0"]["nll"] > corr["0.0"]["nll"]
        held = models[family]["held_out_class"]
        # the softmax models' probabilities are flatter in distribution (temperature 1)
        ratio = 1.5 if family.startswith("sv") else 2.0
        assert held["mean_entropy_out"] > ratio * held["mean_entropy_in"], family
        assert held["auroc_entropy"] > 0.85, family
    for family in ("svgp", "svtp"):
        res = models[family]
        assert res["temperature"] == 1.0  # scored with their own predictive
        assert res["final_elbo"] > res["initial_elbo"] + 100
        # the single-draw, full-batch fit left ECE 0.39 at clean digits (probabilities far
        # too flat); the fitted bound gives calibrated-enough probabilities
        assert res["corruption"]["0.0"]["ece"] < 0.25, family
    # the paired per-point NLL differences average to the difference of the models' NLLs
    paired = record["results"]["paired_nll_gain"]
    for pair, (base, alt) in {
        "regression": ("gaussian", "inverse_gamma"), "sparse_variational": ("svgp", "svtp")
    }.items():  # fmt: skip
        for level, d in paired[pair].items():
            nll = {f: models[f]["corruption"][level]["nll"] for f in (base, alt)}
            assert d["mean"] == pytest.approx(nll[base] - nll[alt], abs=1e-12), (pair, level)
            assert d["points"] == 150 and d["se_points"] > 0 and d["se_splits"] is None
    assert (tmp_path / "ood.png").exists()


def test_wide_nets_experiment_quick(tmp_path, monkeypatch):
    """Trained wide networks with a posterior scale reproduce the t-process predictive."""
    # one job per block of 64 members; the checks below run on the resumed record
    record = _run_killed_then_resumed("nngp-wide-nets", tmp_path, monkeypatch, num_jobs=4)
    res = record["results"]
    assert res["max_final_grad_norm"] < 1e-6  # gradient descent converged
    # under the null the mean KS distance over test points is ~0.87/sqrt(M), well below the
    # 5% critical value 1.36/sqrt(M); finite width adds an O(1/sqrt(width)) bias
    assert res["ks_mean"] < res["ks_critical_5pct"]
    assert abs(res["sd_ratio_mean"] - 1) < 0.05
    assert (tmp_path / "wide_nets.png").exists()


@pytest.mark.slow
def test_hmc_experiment_quick(tmp_path):
    """NUTS vs type-II ML on 2 splits of Boston with 20 training points, paired per point.

    The paired differences must be finite and average to the difference of the two
    models' NLLs; both predictives must beat the prior predictive N(0, 1) of the
    standardized targets by a wide margin, and HMC's NLL must stay within 0.3 nats of
    the type-II fit's (the full run at this size found +0.03 to +0.16 per split).
    """
    from bayes.models.nngp.data import load_regression, split

    record = run_experiment("nngp-hmc", quick=True, out=tmp_path, progress=False)
    res = json.loads((tmp_path / "results.json").read_text())["results"]
    assert res == record["results"]
    assert res["settings"]["seeds"] == [0, 1]
    assert set(res["table"]) == set(res["cells"]) == {"boston/n=20"}
    cell = res["cells"]["boston/n=20"]
    x, y = load_regression("boston")
    for seed, run in zip(res["settings"]["seeds"], cell["runs"]):
        s = split(x, y, seed=seed, max_train=20, max_eval=50)
        assert len(run["nll_diff"]) == len(run["se_diff"]) == len(s.y_test) == 50
        assert np.all(np.isfinite(run["nll_diff"])) and np.all(np.isfinite(run["se_diff"]))
        assert np.mean(run["nll_diff"]) == pytest.approx(run["ml_nll"] - run["hmc_nll"])
        prior_nll = float(np.mean(0.5 * s.y_test**2 + 0.5 * np.log(2 * np.pi)))
        for nll in (run["ml_nll"], run["hmc_nll"]):
            assert nll < prior_nll - 0.5, (seed, nll, prior_nll)
        assert abs(run["hmc_nll"] - run["ml_nll"]) < 0.3, (seed, run)
    summary = res["table"]["boston/n=20"]["nll"]
    assert summary["splits"] == 2 and summary["se_splits"] > 0
    assert (tmp_path / "hmc_type2.png").exists()
