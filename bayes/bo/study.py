"""A study: search space, outcomes, settings and trials, kept in a store file.

Typical use::

    study = Study.create("study.db", space, objectives="loss")
    for trial in study.ask(4):
        study.start(trial)
        study.tell(trial, evaluate(trial.params))
    print(study.best())

``ask`` proposes points (a scrambled Sobol initial design, then the surrogate
and acquisition) and records them as ``pending``; ``start`` marks one
``running``; ``tell`` records the outcome (or the failure). Pending and
running trials are the ``X_pending`` of later ``ask`` calls.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from numbers import Real as _Number
from pathlib import Path
from typing import Any

import numpy as np

from bayes.bo.acquisition import check_acquisition, default_acquisition
from bayes.bo.space import Space
from bayes.bo.store import Store, Trial
from bayes.bo.surrogates import make_surrogate

__all__ = ["Study", "StudyError"]


@contextlib.contextmanager
def _single_threaded(n_train: int) -> Iterator[None]:
    """Fit and optimize small models on one thread, restoring the settings afterwards.

    Below a few thousand points, intra-op parallelism costs more than it saves,
    and on a busy machine spinning threads make fitting and acquisition
    optimization tens of times slower. Both thread pools are limited: torch's
    (BoTorch models) and the BLAS/LAPACK behind JAX's Cholesky and triangular
    solves (the kernel surrogates ``ibnn``, ``dkl`` and ``stp`` factorize an
    ``n x n`` matrix at every optimizer step; with one BLAS thread their fits
    ran 14x faster on a loaded 2-core machine, see docs/benchmarks.md).
    """
    import torch

    from bayes._blas import serial_blas

    if n_train > 2000:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with serial_blas():
            yield
    finally:
        torch.set_num_threads(before)


class StudyError(ValueError):
    """Invalid study settings or a request the study cannot serve."""


def _objectives(spec: str | Sequence[str] | Mapping[str, str]) -> list[dict[str, str]]:
    if isinstance(spec, str):
        spec = {spec: "minimize"}
    elif not isinstance(spec, Mapping):
        spec = dict.fromkeys(spec, "minimize")
    out = []
    for name, direction in spec.items():
        if direction not in ("minimize", "maximize"):
            raise StudyError(f"objective {name!r}: direction must be minimize or maximize")
        out.append({"name": str(name), "direction": direction})
    if not out:
        raise StudyError("a study needs at least one objective")
    return out


def _constraints(spec: Mapping[str, tuple[str, float]] | None) -> list[dict[str, Any]]:
    out = []
    for name, rule in (spec or {}).items():
        try:
            op, bound = rule
        except (TypeError, ValueError):
            msg = f"constraint {name!r}: expected ('<=', bound) or ('>=', bound)"
            raise StudyError(msg) from None
        if op not in ("<=", ">="):
            raise StudyError(f"constraint {name!r}: operator must be '<=' or '>=', got {op!r}")
        out.append({"name": str(name), "op": op, "bound": float(bound)})
    return out


class Study:
    """A Bayesian-optimization study backed by a store file.

    Create with :meth:`create`, reopen with :meth:`load`.

    Attributes:
        path: The store file.
        space: The :class:`~bayes.bo.space.Space`.
        objectives: ``[{"name", "direction"}]``.
        constraints: ``[{"name", "op", "bound"}]``.
        settings: The rest of the stored settings (surrogate, acquisition, seed, ...).
        last_timings: Seconds spent by the last model-based :meth:`ask`
            (``fit_s``, ``acquisition_s``).
    """

    def __init__(self, store: Store):
        self._store = store
        meta = store.meta()
        self.path = store.path
        self.space = Space(meta["space"])
        self.objectives: list[dict[str, str]] = meta["objectives"]
        self.constraints: list[dict[str, Any]] = meta["constraints"]
        self.settings: dict[str, Any] = meta
        self.last_timings: dict[str, float] = {}

    # -- creation ----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        space: Space | Sequence[Any] | Mapping[str, Any],
        *,
        objectives: str | Sequence[str] | Mapping[str, str] = "y",
        constraints: Mapping[str, tuple[str, float]] | None = None,
        surrogate: str = "gp",
        surrogate_options: Mapping[str, Any] | None = None,
        acquisition: str | None = None,
        acquisition_options: Mapping[str, Any] | None = None,
        n_initial: int | None = None,
        seed: int = 0,
        optimum: float | None = None,
        ref_point: Sequence[float] | None = None,
        name: str | None = None,
    ) -> Study:
        """Create a new study file.

        Args:
            path: Store file to create (must not exist).
            space: A :class:`Space` or what its constructor takes.
            objectives: Outcome name(s) to optimize; a name or list means
                minimize, or ``{name: "minimize" | "maximize"}``.
            constraints: Outcome constraints ``{name: ("<=", bound)}`` or ``(">=", bound)``.
            surrogate: Registered surrogate name (``gp``, ``saas``, ...).
            surrogate_options: Keyword arguments of the surrogate.
            acquisition: ``qlognei`` (default, one objective), ``qlogei``,
                ``qucb``, ``ts`` or ``qlognehvi`` (default, several objectives).
            acquisition_options: See :func:`bayes.bo.acquisition.suggest`.
            n_initial: Size of the Sobol initial design (default ``max(5, 2 d)``).
            seed: Seed of the initial design and the acquisition's randomness.
            optimum: Known optimal value of the (single) objective, for regret plots.
            ref_point: Hypervolume reference point in the objectives' units.
            name: A label for reports.

        Raises:
            StudyError: Invalid settings. StoreError: ``path`` exists.
        """
        space = space if isinstance(space, Space) else Space(space)
        objs = _objectives(objectives)
        cons = _constraints(constraints)
        names = [o["name"] for o in objs] + [c["name"] for c in cons]
        if len(set(names)) != len(names):
            raise StudyError(f"outcome names must be distinct, got {names}")
        acquisition = acquisition or default_acquisition(len(objs))
        try:
            check_acquisition(acquisition, len(objs), len(cons))
            make_surrogate(surrogate, **dict(surrogate_options or {}))
        except ValueError as err:
            raise StudyError(str(err)) from None
        if ref_point is not None and len(ref_point) != len(objs):
            raise StudyError(f"ref_point needs {len(objs)} values, got {len(ref_point)}")
        meta = {
            "name": name or Path(path).stem, "space": space.to_list(), "objectives": objs,
            "constraints": cons, "surrogate": surrogate,
            "surrogate_options": dict(surrogate_options or {}), "acquisition": acquisition,
            "acquisition_options": dict(acquisition_options or {}),
            "n_initial": int(n_initial) if n_initial else max(5, 2 * space.dim),
            "seed": int(seed), "optimum": optimum,
            "ref_point": list(map(float, ref_point)) if ref_point is not None else None,
            "created": time.time(),
        }  # fmt: skip
        return cls(Store.create(path, meta))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Study:
        """Open an existing study file.

        Raises:
            StoreError: Missing, corrupt or foreign file (left unmodified).
        """
        return cls(Store.open(path))

    def update_settings(self, **values: Any) -> None:
        """Change stored settings (e.g. ``surrogate``) in one transaction."""
        merged = {**self.settings, **values}
        try:
            check_acquisition(merged["acquisition"], len(self.objectives), len(self.constraints))
            make_surrogate(merged["surrogate"], **merged["surrogate_options"])
        except ValueError as err:
            raise StudyError(str(err)) from None
        self._store.set_meta(**values)
        self.settings = self._store.meta()

    def close(self) -> None:
        """Close the store connection."""
        self._store.close()

    # -- trials ------------------------------------------------------------------
    @property
    def outcome_names(self) -> list[str]:
        """Objective names then constraint names."""
        return [o["name"] for o in self.objectives] + [c["name"] for c in self.constraints]

    def trials(self, states: Sequence[str] | None = None) -> list[Trial]:
        """All trials (or those in ``states``) in creation order."""
        return self._store.trials(states)

    def counts(self) -> dict[str, int]:
        """Number of trials per state."""
        return self._store.counts()

    def start(self, trial: Trial, *, worker: str | None = None) -> None:
        """Mark a pending trial as running."""
        self._store.mark_running(trial.id, worker=worker)

    def abandon_unfinished(self, reason: str) -> list[int]:
        """Mark all pending and running trials ``abandoned`` (e.g. after a crash)."""
        return self._store.abandon_unfinished(reason)

    def tell(
        self,
        trial: Trial | int,
        value: float | Mapping[str, float] | None = None,
        *,
        failure: BaseException | str | None = None,
        worker: str | None = None,
        started: float | None = None,
        finished: float | None = None,
    ) -> Trial:
        """Record the outcome of a trial, or its failure.

        ``value`` is a number (one objective and no constraints) or a dict
        with every objective and constraint name. A value that is not finite,
        has the wrong type or misses an outcome makes the trial ``failed``
        with the reason recorded, like an explicit ``failure``.

        Returns:
            The updated trial record.

        Raises:
            StoreError: The trial is already finished (it is never recorded twice).
        """
        trial_id = trial.id if isinstance(trial, Trial) else int(trial)
        kw = {"worker": worker, "started": started, "finished": finished}
        if failure is None:
            outcomes, failure = self._check_value(value)
            if failure is None:
                return self._store.finish(trial_id, "complete", outcomes=outcomes, **kw)
        if isinstance(failure, BaseException):
            failure = f"{type(failure).__name__}: {failure}"
        return self._store.finish(trial_id, "failed", error=str(failure), **kw)

    def _check_value(self, value: Any) -> tuple[dict[str, float] | None, str | None]:
        names = self.outcome_names
        if isinstance(value, Mapping):
            missing = [n for n in names if n not in value]
            if missing:
                return None, f"returned a dict without outcome(s) {missing}"
            raw = {n: value[n] for n in names}
        elif isinstance(value, _Number) and not isinstance(value, bool) and len(names) == 1:
            raw = {names[0]: value}
        else:
            want = "a number" if len(names) == 1 else f"a dict with {names}"
            return None, f"returned {type(value).__name__} {value!r:.80}, expected {want}"
        out = {}
        for n, v in raw.items():
            if isinstance(v, bool) or not isinstance(v, _Number):
                return None, f"outcome {n!r} is {type(v).__name__} {v!r:.80}, expected a number"
            if not math.isfinite(float(v)):
                return None, f"outcome {n!r} is {float(v)} (not finite)"
            out[n] = float(v)
        return out, None

    # -- results -----------------------------------------------------------------
    def _feasible(self, trial: Trial) -> bool:
        for c in self.constraints:
            v = trial.outcomes[c["name"]]
            if (c["op"] == "<=" and v > c["bound"]) or (c["op"] == ">=" and v < c["bound"]):
                return False
        return True

    def best(self) -> Trial | None:
        """The best complete, feasible trial of a single-objective study (``None`` if none)."""
        if len(self.objectives) != 1:
            raise StudyError("a multi-objective study has no single best; use pareto()")
        name, sign = self.objectives[0]["name"], self._signs()[0]
        done = [t for t in self.trials(["complete"]) if self._feasible(t)]
        return max(done, key=lambda t: sign * t.outcomes[name]) if done else None

    def pareto(self) -> list[Trial]:
        """Complete, feasible trials that no other such trial dominates."""
        done = [t for t in self.trials(["complete"]) if self._feasible(t)]
        if not done:
            return []
        Y = self._objective_matrix(done)
        keep = [
            i for i in range(len(done))
            if not np.any(np.all(Y[i] <= Y, axis=1) & np.any(Y[i] < Y, axis=1))
        ]  # fmt: skip
        return [done[i] for i in keep]

    def _signs(self) -> np.ndarray:
        return np.array([1.0 if o["direction"] == "maximize" else -1.0 for o in self.objectives])

    def _objective_matrix(self, trials: Sequence[Trial]) -> np.ndarray:
        """Objectives of ``trials`` in the maximization convention, ``n x k``."""
        names = [o["name"] for o in self.objectives]
        return np.array([[t.outcomes[n] for n in names] for t in trials]) * self._signs()

    # -- suggestions -------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Trial]:
        """Propose ``n`` new points, recorded as ``pending`` trials.

        The first ``n_initial`` points come from a scrambled Sobol sequence
        (seeded by the study seed, so the design is reproducible). Later
        points maximize the acquisition on the surrogate fitted to the
        complete trials, with pending and running trials as ``X_pending``.
        Failed points are also passed as pending, which steers new
        suggestions away from them; a suggestion that still lands on a failed
        point is replaced by a random one, so failures are not retried.

        Returns:
            The new trials (state ``pending``).
        """
        if n < 1:
            raise StudyError(f"ask needs n >= 1, got {n}")
        trials = self.trials()
        done = [t for t in trials if t.state == "complete"]
        n_sobol = sum(t.source == "sobol" for t in trials)
        k = max(0, min(n, self.settings["n_initial"] - n_sobol))
        if len(done) < 2:
            k = n
        points: list[tuple[dict[str, Any], Sequence[float], str]] = []
        if k:
            for u in self._sobol(n_sobol, k):
                points.append((self.space.decode(u), u, "sobol"))
        if n - k:
            busy = [t.x for t in trials if t.state in ("pending", "running", "failed")]
            busy += [x for _, x, _ in points]
            for u, source in self._model_points(n - k, done, busy, len(trials)):
                points.append((self.space.decode(u), u, source))
        return self._store.add_trials(points)

    def _sobol(self, start: int, count: int) -> np.ndarray:
        from scipy.stats import qmc

        engine = qmc.Sobol(self.space.dim, scramble=True, seed=self.settings["seed"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # balance warning for non powers of two
            u = engine.random(start + count)[start:]
        return self.space.snap(u)

    def training_data(self, trials: Sequence[Trial] | None = None):
        """``(train_X, train_Y)`` float64 tensors, ``n x d`` and ``n x m``, objectives maximized."""
        import torch

        trials = self.trials(["complete"]) if trials is None else trials
        X = torch.tensor([t.x for t in trials], dtype=torch.float64).reshape(-1, self.space.dim)
        obj = self._objective_matrix(trials).reshape(len(trials), -1)
        cons = [[t.outcomes[c["name"]] for c in self.constraints] for t in trials]
        Y = np.concatenate([obj, np.asarray(cons, dtype=np.float64).reshape(len(trials), -1)], 1)
        return X, torch.tensor(Y, dtype=torch.float64)

    def _model_points(self, q: int, done: list[Trial], busy: list, salt: int):
        import torch

        from bayes.bo.acquisition import suggest

        train_X, train_Y = self.training_data(done)
        pending = torch.tensor(np.asarray(busy, dtype=np.float64)).reshape(-1, self.space.dim)
        ref = self.settings.get("ref_point")
        if ref is not None:
            ref = list(np.asarray(ref) * self._signs())
        surrogate = make_surrogate(self.settings["surrogate"], **self.settings["surrogate_options"])
        # Fork the global torch RNG: reproducible per (seed, trial count), caller state untouched.
        with torch.random.fork_rng(), _single_threaded(len(done)):
            torch.manual_seed(self.settings["seed"] * 1_000_003 + salt)
            t0 = time.perf_counter()
            model = surrogate.fit(train_X, train_Y)
            t1 = time.perf_counter()
            cand = suggest(
                model, train_X, train_Y, q=q, acquisition=self.settings["acquisition"],
                num_objectives=len(self.objectives), constraints=self.constraints,
                X_pending=pending if len(pending) else None, ref_point=ref,
                options=self.settings["acquisition_options"],
            )  # fmt: skip
            self.last_timings = {"fit_s": t1 - t0, "acquisition_s": time.perf_counter() - t1}
            U = self.space.snap(cand.numpy())
            failed = np.asarray([t.x for t in self.trials(["failed"])]).reshape(-1, self.space.dim)
            rng = np.random.default_rng(self.settings["seed"] * 7919 + salt)
            for u in U:
                if len(failed) and np.min(np.abs(failed - u).max(axis=1)) < 1e-9:
                    yield self.space.snap(rng.random(self.space.dim)), "random"
                else:
                    yield u, "model"
