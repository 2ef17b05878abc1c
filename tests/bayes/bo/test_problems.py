"""Built-in problems: their known optima, noise, picklability and name errors."""

from __future__ import annotations

import pickle

import pytest

from bayes.bo import PROBLEMS, get_problem


@pytest.mark.parametrize("name", [n for n in PROBLEMS if n not in ("branincurrin", "dtlz2")])
def test_known_optimum_is_attained_at_the_optimizer(name: str) -> None:
    problem = get_problem(name)
    assert problem.objective(problem.optimizer) == pytest.approx(problem.optimum, abs=1e-4)
    corner = problem.space.decode([0.05] * problem.space.dim)
    assert problem.objective(corner) > problem.optimum + 1e-3


@pytest.mark.parametrize("name", ["branincurrin", "dtlz2"])
def test_multi_objective_problems(name: str) -> None:
    problem = get_problem(name)
    value = problem.objective(problem.space.decode([0.5] * problem.space.dim))
    assert set(value) == {"f0", "f1"} == set(problem.objectives)
    assert problem.max_hypervolume > 0 and len(problem.ref_point) == 2


def test_noise_is_reproducible_and_pickles() -> None:
    noisy = get_problem("branin", noise_std=0.5)
    x = noisy.space.decode([0.3, 0.7])
    clean = get_problem("branin").objective(x)
    assert noisy.objective(x) == noisy.objective(x) != clean
    assert pickle.loads(pickle.dumps(noisy.objective))(x) == noisy.objective(x)
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        get_problem("nope")
