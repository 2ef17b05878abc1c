"""Built-in test problems from ``botorch.test_functions`` with known optima.

Every problem is a minimization over a box; its objective takes the parameter
dict ``{"x0": ..., "x1": ..., ...}`` and returns a float (one objective) or a
dict ``{"f0": ..., "f1": ...}`` (several). Objectives are picklable, so they
run on process pools and Dask workers.

| name | d | objectives | known optimum |
| --- | --- | --- | --- |
| `branin` | 2 | 1 | 0.397887 |
| `hartmann6` | 6 | 1 | -3.32237 |
| `ackley2` | 2 | 1 | 0 |
| `ackley10` | 10 | 1 | 0 |
| `ackley50` | 50 | 1 | 0 |
| `levy4` | 4 | 1 | 0 |
| `rosenbrock4` | 4 | 1 | 0 |
| `branincurrin` | 2 | 2 | hypervolume 59.36 (reference point 18, 6) |
| `dtlz2` | 6 | 2 | hypervolume 0.4246 (reference point 1.1, 1.1) |
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayes.bo.space import Real, Space

__all__ = ["PROBLEMS", "Problem", "ProblemObjective", "get_problem"]

# name -> (botorch class name, constructor kwargs, dim, num_objectives)
_SPECS: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "branin": ("Branin", {}, 2, 1),
    "hartmann6": ("Hartmann", {"dim": 6}, 6, 1),
    "ackley2": ("Ackley", {"dim": 2}, 2, 1),
    "ackley10": ("Ackley", {"dim": 10}, 10, 1),
    "ackley50": ("Ackley", {"dim": 50}, 50, 1),
    "levy4": ("Levy", {"dim": 4}, 4, 1),
    "rosenbrock4": ("Rosenbrock", {"dim": 4}, 4, 1),
    "branincurrin": ("BraninCurrin", {}, 2, 2),
    "dtlz2": ("DTLZ2", {"dim": 6, "num_objectives": 2}, 6, 2),
}
PROBLEMS = tuple(_SPECS)
_CACHE: dict[str, Any] = {}


def _function(name: str) -> Any:
    if name not in _CACHE:
        import botorch.test_functions as tf

        cls, kwargs, _, _ = _SPECS[name]
        _CACHE[name] = getattr(tf, cls)(**kwargs)
    return _CACHE[name]


class ProblemObjective:
    """Picklable objective of a built-in problem.

    Args:
        name: Problem name (see :data:`PROBLEMS`).
        noise_std: Standard deviation of Gaussian noise added to each outcome;
            the noise is a deterministic function of the point (seeded by it).
        sleep: Seconds to wait per evaluation (simulates an expensive objective).
    """

    def __init__(self, name: str, noise_std: float = 0.0, sleep: float = 0.0):
        if name not in _SPECS:
            raise ValueError(f"unknown problem {name!r} (known: {', '.join(PROBLEMS)})")
        self.name, self.noise_std, self.sleep = name, float(noise_std), float(sleep)

    def __call__(self, params: dict[str, Any]) -> float | dict[str, float]:
        import torch

        _, _, dim, m = _SPECS[self.name]
        x = torch.tensor([[float(params[f"x{i}"]) for i in range(dim)]], dtype=torch.float64)
        y = np.atleast_1d(_function(self.name).evaluate_true(x).squeeze(0).numpy()).astype(float)
        if self.noise_std > 0:
            seed = zlib.crc32(np.asarray(x.numpy(), dtype=np.float64).tobytes())
            y = y + self.noise_std * np.random.default_rng(seed).standard_normal(y.shape)
        if self.sleep > 0:
            time.sleep(self.sleep)
        return float(y[0]) if m == 1 else {f"f{i}": float(v) for i, v in enumerate(y)}


@dataclass(frozen=True)
class Problem:
    """A built-in problem: space, objective and what is known about its optimum.

    Attributes:
        name: Registry name.
        space: Box of ``d`` reals named ``x0 ... x{d-1}``.
        objectives: Outcome names (``["y"]`` or ``["f0", "f1"]``), all minimized.
        objective: Picklable callable ``params -> float | dict``.
        optimum: Minimum value (one objective) or ``None``.
        optimizer: A minimizer as a parameter dict (one objective) or ``None``.
        ref_point: Hypervolume reference point in the objectives' units (several objectives).
        max_hypervolume: Hypervolume of the true Pareto front w.r.t. ``ref_point``.
    """

    name: str
    space: Space
    objectives: list[str]
    objective: ProblemObjective
    optimum: float | None = None
    optimizer: dict[str, float] | None = None
    ref_point: list[float] | None = None
    max_hypervolume: float | None = None


def get_problem(name: str, *, noise_std: float = 0.0, sleep: float = 0.0) -> Problem:
    """The built-in problem ``name`` (see :data:`PROBLEMS`).

    Raises:
        ValueError: Unknown name.
    """
    key = name.lower()
    if key not in _SPECS:
        raise ValueError(f"unknown problem {name!r} (known: {', '.join(PROBLEMS)})")
    fn = _function(key)
    _, _, dim, m = _SPECS[key]
    bounds = fn.bounds.numpy()
    space = Space([Real(f"x{i}", float(bounds[0, i]), float(bounds[1, i])) for i in range(dim)])
    objective = ProblemObjective(key, noise_std=noise_std, sleep=sleep)
    if m == 1:
        opt = fn.optimizers[0].tolist() if getattr(fn, "_optimizers", None) else None
        return Problem(
            key, space, ["y"], objective, optimum=float(fn.optimal_value),
            optimizer={f"x{i}": float(v) for i, v in enumerate(opt)} if opt else None,
        )  # fmt: skip
    return Problem(
        key, space, [f"f{i}" for i in range(m)], objective,
        ref_point=[float(v) for v in fn._ref_point], max_hypervolume=float(fn._max_hv),
    )  # fmt: skip
