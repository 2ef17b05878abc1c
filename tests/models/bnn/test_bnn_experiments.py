"""The registered ``bo-bnn`` experiment: quick run structure, shared design, hypervolume,
the embedded Hartmann6 problem and resuming an interrupted study."""

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
        assert info["num_seeds"] == 2, name
        if name != "sobol":
            assert info["seconds_per_iteration"] > 0, name
            assert info["seconds_per_iteration_median"] > 0, name
    ranking = branin["ranking"]
    assert sorted(r["method"] for r in ranking) == sorted(methods)
    ranks = [r["mean_rank"] for r in ranking]
    assert ranks == sorted(ranks)
    # Mean ranks of n methods always average to (n + 1) / 2.
    assert np.mean(ranks) == pytest.approx((len(methods) + 1) / 2)


def test_embedded_hartmann6_depends_only_on_its_active_coordinates():
    from bayes.models.bnn.experiments import EmbeddedHartmann6, _problem

    problem = _problem("hartmann6-50")
    objective = problem.objective
    assert problem.space.dim == 50 and len(set(objective.active)) == 6
    # Hartmann6's minimizer (Surjanovic & Bingham) on the active coordinates, anything elsewhere.
    best = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    rng = np.random.default_rng(1)
    for _ in range(3):
        u = rng.random(50)
        u[list(objective.active)] = best
        value = objective({f"x{i}": v for i, v in enumerate(u)})
        assert value == pytest.approx(problem.optimum, abs=1e-5)
    # Moving only inactive coordinates leaves the value unchanged; an active one changes it.
    u = rng.random(50)
    base = objective({f"x{i}": v for i, v in enumerate(u)})
    inactive = sorted(set(range(50)) - set(objective.active))
    v = u.copy()
    v[inactive] = rng.random(len(inactive))
    assert objective({f"x{i}": x for i, x in enumerate(v)}) == base
    v[objective.active[0]] = 1.0 - v[objective.active[0]]
    assert objective({f"x{i}": x for i, x in enumerate(v)}) != base
    with pytest.raises(ValueError, match="active"):
        EmbeddedHartmann6(10, active=(0, 1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match="noisy"):
        _problem("hartmann6-50", 0.1)


def test_highdim_plan_runs_the_chosen_surrogates_and_sobol():
    from bayes.models.bnn.experiments import PLANS, _jobs, _methods

    plan = PLANS["highdim"]
    assert _methods(1, plan) == ["gp", "bnn-vi", "ensemble", "ibnn", "dkl", "stp", "sobol"]
    assert {spec[0] for spec in plan["problems"].values()} == {"ackley50", "hartmann6-50"}
    # Every seed of the main comparison before the late method; a seed share runs only its own.
    jobs = _jobs(["gp", "stp", "sobol"], {**plan, "num_seeds": 2})
    assert jobs == [("gp", 0), ("sobol", 0), ("gp", 1), ("sobol", 1), ("stp", 0), ("stp", 1)]
    share = _jobs(["gp", "stp", "sobol"], {**plan, "num_seeds": 3, "seeds": [2, 5]})
    assert share == [("gp", 2), ("sobol", 2), ("stp", 2)]
    assert _methods(1, PLANS["quick"])[-1] == "sobol" and "saas" not in _methods(1, PLANS["medium"])


def test_highdim_saas_plan_pairs_with_the_highdim_studies():
    from bayes.models.bnn.experiments import PLANS, _jobs, _methods

    plan, base = PLANS["highdim-saas"], PLANS["highdim"]
    # Same problem specs, sizes and seeds: same study files, same Sobol designs.
    assert plan["problems"] == {k: base["problems"][k] for k in plan["problems"]}
    for name in ("num_seeds", "surrogate_options", "acquisition_options"):
        assert plan[name] == base[name], name
    methods = _methods(1, plan)
    assert methods == ["gp", "saas", "ibnn", "sobol"]
    jobs = _jobs(methods, {**plan, "num_seeds": 2})
    assert jobs == [("gp", 0), ("saas", 0), ("sobol", 0), ("gp", 1), ("saas", 1), ("sobol", 1),
                    ("ibnn", 0), ("ibnn", 1)]  # fmt: skip


def test_highdim_hmc_plan_reads_the_saas_studies_and_runs_bnn_hmc_last():
    from bayes.models.bnn.experiments import PLANS, _jobs, _methods

    plan, base = PLANS["highdim-hmc"], PLANS["highdim-saas"]
    for name in ("problems", "num_seeds", "surrogate_options", "acquisition_options"):
        assert plan[name] == base[name], name
    methods = _methods(1, plan)
    assert methods == ["gp", "saas", "bnn-hmc", "ibnn", "sobol"]
    jobs = _jobs(methods, {**plan, "num_seeds": 2})
    # Every study but bnn-hmc's already exists in a highdim-saas store and is only read.
    assert jobs[-2:] == [("bnn-hmc", 0), ("bnn-hmc", 1)]
    assert sorted(jobs[:-2]) == sorted((m, s) for m in methods if m != "bnn-hmc" for s in (0, 1))


def test_full_budget_plan_shares_the_full_plans_studies():
    from bayes.models.bnn.experiments import PLANS, _jobs, _methods

    plan, full = PLANS["full-budget"], PLANS["full"]
    # Same problem specs as the full plan: its seeds get the same Sobol designs.
    assert plan["problems"] == {k: full["problems"][k] for k in plan["problems"]}
    # Every low-dimensional problem of the full plan (the 50-d ones have their own plans).
    assert set(plan["problems"]) == set(full["problems"]) - {"ackley50", "hartmann6-50"}
    assert plan["num_seeds"] == full["num_seeds"]
    assert _methods(2, plan)[-1] == "sobol" and "saas" not in _methods(2, plan)
    jobs = _jobs(_methods(1, plan), {**plan, "num_seeds": 2})
    assert [m for m, _ in jobs[-2:]] == ["saas", "saas"]


def test_summary_keeps_every_seeds_final_value():
    from bayes.models.bnn.experiments import _summarize

    runs = {
        "gp": [{"curve": np.array([3.0, 2.0]), "seconds": [1.0], "seed": 0},
               {"curve": np.array([3.0, 1.0]), "seconds": [3.0], "seed": 1}],
        "sobol": [{"curve": np.array([3.0, 2.5]), "seconds": [], "seed": 1},
                  {"error": "not run", "seed": 0}],
    }  # fmt: skip
    entry = _summarize("branin", ("branin", 0.0, 1, 2), runs, 2)
    gp, sobol = entry["methods"]["gp"], entry["methods"]["sobol"]
    assert gp["final_by_seed"] == {"0": 2.0, "1": 1.0}
    assert gp["final_regret_mean"] == pytest.approx(1.5)
    assert gp["seconds_per_iteration"] == pytest.approx(2.0)
    assert sobol["final_by_seed"] == {"1": 2.5} and sobol["failures"] == ["not run"]
    # Only methods finished on every seed are ranked.
    assert [r["method"] for r in entry["ranking"]] == ["gp"]


def test_an_interrupted_study_resumes_to_the_uninterrupted_curve(tmp_path: Path):
    from bayes.models.bnn.experiments import _ACQ_SMALL, _one_run

    from bayes.bo.problems import get_problem
    from bayes.bo.study import Study

    plan = {"surrogate_options": {}, "acquisition_options": _ACQ_SMALL}
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    spec = ("branin", 0.0, 4, 7)
    full = _one_run("branin", spec, "gp", 3, plan, whole)
    # Stop after 5 evaluations plus one suggestion that was never evaluated.
    part = _one_run("branin", (*spec[:3], 5), "gp", 3, plan, cut)
    assert len(part["curve"]) == 5 and len(part["seconds"]) == 1
    study = Study.load(cut / "branin-gp-3.db")
    study.ask(1)
    study.close()
    resumed = _one_run("branin", spec, "gp", 3, plan, cut)
    np.testing.assert_allclose(resumed["curve"], full["curve"], rtol=1e-9)
    trials = Study.load(cut / "branin-gp-3.db").trials()
    assert [t.state for t in trials] == ["complete"] * 7
    problem = get_problem("branin")
    assert resumed["curve"][-1] == pytest.approx(
        min(t.outcomes["y"] for t in trials) - problem.optimum
    )
    # Seconds: one per model-based ask made by _one_run (the manual ask is not timed).
    assert len(full["seconds"]) == 3 and len(resumed["seconds"]) == 2
    # Summarizing only: finished studies are read back, others are reported, nothing runs.
    summary = {**plan, "finished_only": True}
    again = _one_run("branin", spec, "gp", 3, summary, whole)
    np.testing.assert_allclose(again["curve"], full["curve"])
    assert again["seconds"] == full["seconds"]
    longer = _one_run("branin", (*spec[:3], 9), "gp", 3, summary, whole)
    assert longer == {"error": "unfinished (7 of 9 evaluations)"}
    assert _one_run("branin", spec, "ibnn", 3, summary, whole) == {"error": "not run"}
    assert len(Study.load(whole / "branin-gp-3.db").trials()) == 7


def test_command_line_overrides_methods_and_surrogate_options():
    from bayes.models.bnn.experiments import (
        PLANS,
        SMALL,
        _methods,
        _override_options,
        _parse_methods,
    )

    plan = {**PLANS["full-budget"], "methods": _parse_methods("bnn-hmc, gp")}
    assert _methods(1, plan) == ["gp", "bnn-hmc", "sobol"]
    options = _override_options(SMALL, ["bnn-hmc:weight_scale=2", "dkl:activation=relu"])
    assert options["bnn-hmc"] == {**SMALL["bnn-hmc"], "weight_scale": 2}
    assert options["dkl"]["activation"] == "relu"
    assert SMALL["bnn-hmc"]["weight_scale"] == 1.0  # the plan's own dict is left alone
    for bad in ("bnn_hmc:weight_scale=2", "bnn-hmc:weight_scale", "weight_scale=2"):
        with pytest.raises(SystemExit, match="surrogate-option"):
            _override_options(SMALL, [bad])
    with pytest.raises(SystemExit, match="unknown sass"):
        _parse_methods("gp,sass")
