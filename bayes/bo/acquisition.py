"""Acquisition: from a fitted surrogate to a batch of candidates in the unit cube.

The model's outputs are ordered ``[objectives..., constraints...]``; objectives
are in the maximization convention (the study flips minimized ones). An
outcome constraint ``c <= b`` is feasible where :math:`Z_c - b \\le 0`, which is
the form BoTorch's constrained acquisition functions take.

Acquisitions (BoTorch's, by name):

- ``qlognei`` (default for one objective): noisy expected improvement on the
  log scale, ``qLogNoisyExpectedImprovement``.
- ``qlogei``: ``qLogExpectedImprovement`` with the best feasible observation
  as incumbent.
- ``qucb``: ``qUpperConfidenceBound`` with ``beta`` (default 2); unconstrained.
- ``ts``: Thompson sampling, the maximizers of joint posterior draws over a
  scrambled Sobol candidate set (``num_candidates``); unconstrained. Running
  trials are not conditioned on: as in asynchronous parallel Thompson sampling
  (Kandasamy et al., AISTATS 2018), each new point comes from its own
  posterior draw, which is what spreads a batch out.
- ``qlognehvi`` (default for several objectives): noisy expected hypervolume
  improvement, ``qLogNoisyExpectedHypervolumeImprovement``, with a reference
  point given or inferred from the observations.

Running trials are passed as ``X_pending`` (all but ``ts``), so a new batch
is chosen knowing that those points are already being evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botorch.models.model import Model
    from torch import Tensor

__all__ = ["ACQUISITIONS", "default_acquisition", "suggest"]

ACQUISITIONS = ("qlognei", "qlogei", "qucb", "ts", "qlognehvi")
_SINGLE = ("qlognei", "qlogei", "qucb", "ts")


def default_acquisition(num_objectives: int) -> str:
    """``qlognei`` for one objective, ``qlognehvi`` for several."""
    return "qlognei" if num_objectives == 1 else "qlognehvi"


def check_acquisition(name: str, num_objectives: int, num_constraints: int) -> None:
    """Raise ValueError if ``name`` cannot serve this problem."""
    if name not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {name!r} (known: {', '.join(ACQUISITIONS)})")
    if num_objectives > 1 and name != "qlognehvi":
        raise ValueError(f"{num_objectives} objectives need acquisition 'qlognehvi', not {name!r}")
    if num_objectives == 1 and name == "qlognehvi":
        raise ValueError("'qlognehvi' needs at least two objectives")
    if num_constraints and name in ("qucb", "ts"):
        raise ValueError(f"acquisition {name!r} does not handle outcome constraints")


def constraint_callables(
    constraints: Sequence[dict[str, Any]], num_objectives: int
) -> list[Any] | None:
    """BoTorch constraint callables ``Z -> Z_c - b`` (feasible where ``<= 0``)."""
    out = []
    for j, spec in enumerate(constraints):
        idx, bound, upper = num_objectives + j, float(spec["bound"]), spec["op"] == "<="

        def fn(Z: Tensor, idx: int = idx, bound: float = bound, upper: bool = upper) -> Tensor:
            return Z[..., idx] - bound if upper else bound - Z[..., idx]

        out.append(fn)
    return out or None


def _feasible(train_Y: Tensor, constraints: Sequence[dict[str, Any]], num_objectives: int):
    import torch

    ok = torch.ones(train_Y.shape[0], dtype=torch.bool)
    for j, spec in enumerate(constraints):
        col = train_Y[:, num_objectives + j]
        ok &= col <= spec["bound"] if spec["op"] == "<=" else col >= spec["bound"]
    return ok


def suggest(
    model: Model,
    train_X: Tensor,
    train_Y: Tensor,
    *,
    q: int,
    acquisition: str,
    num_objectives: int = 1,
    constraints: Sequence[dict[str, Any]] = (),
    X_pending: Tensor | None = None,
    ref_point: Sequence[float] | None = None,
    options: dict[str, Any] | None = None,
) -> Tensor:
    """Choose ``q`` new points by optimizing an acquisition function.

    Args:
        model: Fitted surrogate with ``num_objectives + len(constraints)`` outputs.
        train_X: Observed inputs, ``n x d`` float64 in ``[0, 1]^d``.
        train_Y: Observed outcomes, ``n x m`` (objectives maximized).
        q: Batch size.
        acquisition: One of :data:`ACQUISITIONS`.
        num_objectives: Leading outputs that are objectives.
        constraints: ``{"name", "op": "<=" | ">=", "bound"}`` per constraint output.
        X_pending: Points being evaluated, ``p x d`` (or ``None``).
        ref_point: Hypervolume reference point (maximization convention), ``num_objectives``.
        options: ``num_restarts`` (default 10), ``raw_samples`` (512),
            ``maxiter`` (200), ``beta`` (qUCB, 2.0), ``num_candidates`` (TS, 2048),
            ``mc_samples`` (128).

    Returns:
        Candidates, ``q x d`` float64 in ``[0, 1]^d``.
    """
    import torch
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.optim import optimize_acqf
    from botorch.sampling.get_sampler import get_sampler

    opts = dict(options or {})
    check_acquisition(acquisition, num_objectives, len(constraints))
    d = train_X.shape[-1]
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).to(train_X)
    # The posterior's type picks the sampler: quasi-MC normal draws for Gaussian
    # posteriors, member indices for ensembles.
    with torch.no_grad():
        probe = model.posterior(train_X[:1])
    sampler = get_sampler(probe, torch.Size([int(opts.get("mc_samples", 128))]))
    cons = constraint_callables(constraints, num_objectives)
    first = GenericMCObjective(lambda Z, X=None: Z[..., 0]) if train_Y.shape[-1] > 1 else None

    if acquisition == "ts":
        return _thompson(model, d, q, int(opts.get("num_candidates", 2048)), first, train_X)
    if acquisition == "qlognei":
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement

        acqf = qLogNoisyExpectedImprovement(
            model, X_baseline=train_X, sampler=sampler, objective=first,
            constraints=cons, X_pending=X_pending, prune_baseline=True,
        )  # fmt: skip
    elif acquisition == "qlogei":
        from botorch.acquisition.logei import qLogExpectedImprovement

        feasible = _feasible(train_Y, constraints, num_objectives)
        y0 = train_Y[:, 0]
        best_f = y0[feasible].max() if feasible.any() else y0.min()
        acqf = qLogExpectedImprovement(
            model, best_f=best_f, sampler=sampler, objective=first,
            constraints=cons, X_pending=X_pending,
        )  # fmt: skip
    elif acquisition == "qucb":
        from botorch.acquisition import qUpperConfidenceBound

        acqf = qUpperConfidenceBound(
            model, beta=float(opts.get("beta", 2.0)), sampler=sampler, objective=first,
            X_pending=X_pending,
        )  # fmt: skip
    else:
        from botorch.acquisition.multi_objective.logei import (
            qLogNoisyExpectedHypervolumeImprovement,
        )
        from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective

        if ref_point is None:
            feasible = _feasible(train_Y, constraints, num_objectives)
            ref = _infer_ref_point(train_Y[:, :num_objectives], feasible)
        else:
            ref = torch.as_tensor(ref_point, dtype=train_Y.dtype)
        acqf = qLogNoisyExpectedHypervolumeImprovement(
            model, ref_point=ref, X_baseline=train_X, sampler=sampler,
            objective=IdentityMCMultiOutputObjective(outcomes=list(range(num_objectives))),
            constraints=cons, X_pending=X_pending, prune_baseline=True,
        )  # fmt: skip
    candidates, _ = optimize_acqf(
        acqf, bounds=bounds, q=q,
        num_restarts=int(opts.get("num_restarts", 10)),
        raw_samples=int(opts.get("raw_samples", 512)),
        options={"maxiter": int(opts.get("maxiter", 200)), "batch_limit": 5},
    )  # fmt: skip
    return candidates.detach().clamp(0.0, 1.0)


def _infer_ref_point(Y: Tensor, feasible: Tensor) -> Tensor:
    from botorch.utils.multi_objective.hypervolume import infer_reference_point
    from botorch.utils.multi_objective.pareto import is_non_dominated

    Yf = Y[feasible] if feasible.any() else Y
    return infer_reference_point(Yf[is_non_dominated(Yf)])


def _thompson(model: Model, d: int, q: int, num_candidates: int, objective, like: Tensor) -> Tensor:
    """Maximizers of ``q`` joint posterior draws over a scrambled Sobol candidate set.

    Draws of a mixture posterior (``batch`` of mixture components at dim -3,
    as fully Bayesian and Student-t models give) pick one component each.
    The same candidate is never returned twice.
    """
    import torch
    from torch.quasirandom import SobolEngine

    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    X_cand = SobolEngine(d, scramble=True, seed=seed).draw(num_candidates).to(like)
    with torch.no_grad():
        Z = model.posterior(X_cand).rsample(torch.Size([q]))
        if Z.ndim == 4:  # q x components x N x m
            pick = torch.randint(0, Z.shape[1], (q,))
            Z = Z[torch.arange(q), pick]
        scores = objective(Z) if objective is not None else Z[..., 0]
        chosen: list[int] = []
        for i in range(q):
            s = scores[i].clone()
            if chosen:
                s[chosen] = -torch.inf
            chosen.append(int(torch.argmax(s)))
    return X_cand[chosen]
