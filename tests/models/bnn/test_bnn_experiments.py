"""The registered ``bo-bnn`` experiment: quick run structure, shared design, hypervolume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bayes.experiments import registry, run_experiment


def test_registered_without_importing_the_module():
    entry = registry()["bo-bnn"]
    assert entry.module == "bayes.models.bnn.experiments"


def test_hypervolume_regret_of_the_pareto_front_is_zero_and_never_grows():
    from bayes.models.bnn.experiments import _hypervolume_regret

    from bayes.bo.problems import get_problem

    problem = get_problem("branincurrin")
    rng = np.random.default_rng(0)
    points = [problem.objective(problem.space.decode(u)) for u in rng.random((40, 2))]
    regret = _hypervolume_regret(problem, points)
    assert np.all(np.diff(regret) <= 1e-9)
    assert 0 < regret[-1] < regret[0] <= problem.max_hypervolume
    # A point dominating the reference corner by (a, b) adds exactly a * b.
    ref = problem.ref_point
    single = _hypervolume_regret(problem, [{"f0": ref[0] - 2.0, "f1": ref[1] - 3.0}])
    assert single[0] == pytest.approx(problem.max_hypervolume - 6.0)


@pytest.mark.slow
def test_bo_bnn_quick(tmp_path: Path):
    from bayes.models.bnn.experiments import PLANS, SURROGATES

    record = run_experiment("bo-bnn", quick=True, out=tmp_path, progress=False)
    assert json.loads((tmp_path / "results.json").read_text()) == record
    assert (tmp_path / "bo_bnn_branin.png").stat().st_size > 0
    branin = record["results"]["branin"]
    _, _, n_init, budget = PLANS["quick"]["problems"]["branin"]
    methods = branin["methods"]
    assert set(methods) == {*SURROGATES, "sobol"}
    first = np.asarray(methods["sobol"]["regret_mean"])
    for name, info in methods.items():
        assert info["failures"] == [], name
        curve = np.asarray(info["regret_mean"])
        assert curve.shape == (budget,) and np.all(np.isfinite(curve)), name
        # Same seed, same Sobol design: identical curves until the surrogate takes over.
        np.testing.assert_allclose(curve[:n_init], first[:n_init], err_msg=name)
        assert np.all(np.diff(curve) <= 1e-12), name  # the incumbent never gets worse
        assert np.all(curve >= -1e-9), name  # never below the known optimum
        if name != "sobol":
            assert info["seconds_per_iteration"] > 0, name
    ranking = branin["ranking"]
    assert sorted(r["method"] for r in ranking) == sorted(methods)
    ranks = [r["mean_rank"] for r in ranking]
    assert ranks == sorted(ranks)
    # Mean ranks of n methods always average to (n + 1) / 2.
    assert np.mean(ranks) == pytest.approx((len(methods) + 1) / 2)
