"""User entry points: :func:`fit` (one problem) and :func:`fit_batch` (many trials)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .komp import run_komp
from .sbl import METHODS, SBLConfig, run_sbl

__all__ = ["ALL_METHODS", "FitResult", "compile_fit_batch", "fit", "fit_batch"]

ALL_METHODS = (*METHODS, "komp")


class FitResult(NamedTuple):
    """Estimate and hyperparameters (leading batch axis ``B`` from :func:`fit_batch`).

    Attributes:
        x: Estimate of ``x`` (posterior mean; least squares for ``komp``), ``(N,)``.
        gamma: Prior variances ``(N,)``, zero where pruned (``komp``: the
            support indicator).
        gamma_factors: Kronecker factors ``gamma_i``, ``(n_i,)`` each
            (``classic``: ``(gamma,)``; ``komp``: the mode supports).
        support: Boolean ``(N,)``, the unpruned entries.
        noise_var: Final noise variance (estimated when not given).
        num_iterations: EM iterations (``komp``: atoms selected).
        converged: Stopped on the tolerance rather than the cap.
        costs: SBL cost per iteration, ``(max_iter,)``, NaN past the end
            (``komp``: empty).
    """

    x: jax.Array
    gamma: jax.Array
    gamma_factors: tuple[jax.Array, ...]
    support: jax.Array
    noise_var: jax.Array
    num_iterations: jax.Array
    converged: jax.Array
    costs: jax.Array


def _solve_impl(y, factors, noise_var, cfg: SBLConfig, sparsity: tuple[int, ...] | None):
    if cfg.method == "komp":
        out = run_komp(y, factors, sparsity, noise_var)
        support = out.masks[0]
        for m in out.masks[1:]:
            support = (support[:, None] & m[None, :]).reshape(-1)
        masks = tuple(m.astype(jnp.real(y).dtype) for m in out.masks)
        return FitResult(
            out.mean,
            support.astype(jnp.real(y).dtype),
            masks,
            support,
            jnp.asarray(noise_var, jnp.real(y).dtype),
            out.num_iterations,
            out.converged,
            jnp.zeros(0, jnp.real(y).dtype),
        )
    out = run_sbl(y, factors, noise_var, cfg)
    return FitResult(
        out.mean,
        out.gamma,
        out.factors,
        out.gamma > 0,
        out.noise_var,
        out.num_iterations,
        out.converged,
        out.costs,
    )


@functools.partial(jax.jit, static_argnames=("cfg", "sparsity"))
def _solve(y, factors, noise_var, cfg: SBLConfig, sparsity: tuple[int, ...] | None):
    return _solve_impl(y, factors, noise_var, cfg, sparsity)


@functools.partial(jax.jit, static_argnames=("cfg", "sparsity"))
def _solve_batch(y, factors, noise_var, cfg: SBLConfig, sparsity: tuple[int, ...] | None):
    def one(args):
        return _solve_impl(*args, cfg, sparsity)

    # lax.map rather than vmap: LAPACK (eigh, Cholesky, SVD) is never called on
    # a batch. jaxlib's batched CPU eigh dispatches to the XLA thread pool and
    # deadlocked there in a 100-trial run (all threads idle, one waiting in
    # ParallelBatchMap). Speed either way: each trial stops at its own
    # convergence (AM-KroSBL, 20 paper-sized IRS draws at 20 dB: 2.4x faster
    # than vmap) but loses vectorization when all run to the cap (8 dB: 2.2x
    # to 2.6x slower).
    return jax.lax.map(one, (y, factors, noise_var))


def _prepare(
    y: Any,
    factors: Sequence[Any],
    noise_var: Any,
    method: str,
    sparsity: Sequence[int] | None,
    pc_modes: Sequence[int] | None,
    batched: bool,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    if not isinstance(factors, list | tuple) or len(factors) == 0:
        raise ValueError("factors must be a non-empty sequence of 2-D matrices A_i")
    lead = 1 if batched else 0
    y = np.asarray(y)
    mats = [np.asarray(a) for a in factors]
    for i, a in enumerate(mats):
        if a.ndim not in (2, 2 + lead):
            raise ValueError(f"factor {i} must be a matrix (m_i, n_i); got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"factor {i} contains NaN or infinite values")
    m_total = math.prod(a.shape[-2] for a in mats)
    expected = "(B, M)" if batched else "(M,)"
    if y.ndim != 1 + lead or y.shape[-1] != m_total:
        raise ValueError(
            f"y must have shape {expected} with M = prod(m_i) = {m_total}; got shape {y.shape}"
        )
    if batched:
        for i, a in enumerate(mats):
            if a.ndim == 3 and a.shape[0] != y.shape[0]:
                raise ValueError(f"factor {i} has batch size {a.shape[0]}, y has {y.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinite values")
    if not np.any(y != 0):
        raise ValueError("y is identically zero: the support of x would be empty")
    if noise_var is not None:
        noise_var = np.asarray(noise_var, dtype=float)
        if not np.all(np.isfinite(noise_var)) or np.any(noise_var <= 0):
            raise ValueError(f"noise_var must be finite and positive; got {noise_var}")
    n_modes = len(mats)
    if sparsity is not None:
        if len(sparsity) != n_modes:
            raise ValueError(f"sparsity needs one entry per mode ({n_modes}); got {sparsity}")
        for i, (k, a) in enumerate(zip(sparsity, mats)):
            if not 1 <= int(k) <= min(a.shape[-2:]):
                raise ValueError(
                    f"sparsity[{i}] = {k} must be between 1 and min(m_i, n_i) = {min(a.shape[-2:])}"
                )
    if method == "komp" and sparsity is None and noise_var is None:
        raise ValueError("method='komp' needs sparsity or noise_var to know when to stop")
    if pc_modes is not None and any(not 0 <= int(i) < n_modes for i in pc_modes):
        raise ValueError(f"pc_modes must index modes 0..{n_modes - 1}; got {pc_modes}")
    return y, mats, noise_var


def _prune_tols(prune_tol: Any, n_modes: int) -> float | tuple[float, ...]:
    tols = np.asarray(prune_tol, dtype=float)
    if (
        tols.ndim > 1
        or tols.size != (1 if tols.ndim == 0 else n_modes)
        or np.any(~(tols >= 0) | (tols >= 1))
    ):
        raise ValueError(
            f"prune_tol must be a number in [0, 1) or one per mode ({n_modes}); got {prune_tol}"
        )
    return float(tols) if tols.ndim == 0 else tuple(float(t) for t in tols)


def _run(
    y, factors, *, method, noise_var, max_iter, tol, prune_tol, sparsity, am_sweeps,
    pc_modes, pc_coupling, batched, lower=False,
) -> Any:  # fmt: skip
    y, mats, noise = _prepare(y, factors, noise_var, method, sparsity, pc_modes, batched)
    is_complex = np.iscomplexobj(y) or any(np.iscomplexobj(a) for a in mats)
    with jax.enable_x64(True):
        # NumPy arguments go straight to the compiled call: converting each one
        # with jnp.asarray first was half the cost of a millisecond fit.
        dtype = np.complex128 if is_complex else np.float64
        y = np.asarray(y, dtype)
        batch = y.shape[0] if batched else None
        mats = [np.asarray(a, dtype) for a in mats]
        if batched:
            mats = [a if a.ndim == 3 else np.broadcast_to(a, (batch, *a.shape)) for a in mats]
        learn = noise is None
        if learn:
            # EM start: a tenth of the measurement power.
            noise = 0.1 * np.mean(np.abs(y) ** 2, axis=-1)
        noise = np.broadcast_to(np.asarray(noise, np.float64), (batch,) if batched else ())
        if sparsity is None and method == "komp":
            sparsity = tuple(min(a.shape[-2:]) for a in mats)
        cfg = SBLConfig(
            method=method,
            max_iter=int(max_iter),
            tol=float(tol),
            prune_tol=_prune_tols(prune_tol, len(mats)),
            learn_noise=bool(learn),
            am_sweeps=int(am_sweeps),
            pc_modes=tuple(int(i) for i in (pc_modes if pc_modes is not None else ())),
            pc_coupling=float(pc_coupling),
        )
        spars = None if sparsity is None else tuple(int(k) for k in sparsity)
        if method == "komp" and learn:
            noise = np.zeros_like(noise)
        solver = _solve_batch if batched else _solve
        if lower:
            # Device arrays: the compiled program may be called outside x64 mode,
            # where NumPy float64 arguments would arrive as float32.
            args = (jnp.asarray(y), tuple(jnp.asarray(a) for a in mats), jnp.asarray(noise))
            return solver.lower(*args, cfg=cfg, sparsity=spars).compile(), args
        return solver(y, tuple(mats), noise, cfg=cfg, sparsity=spars)


def _dispatch(y: Any, factors: Sequence[Any], options: dict[str, Any], batched: bool) -> Any:
    if options.get("method") == "pc" and options.get("pc_modes") is None:
        options = {**options, "pc_modes": tuple(range(len(factors)))}
    return _run(y, factors, batched=batched, **options)


def fit(
    y: Any,
    factors: Sequence[Any],
    *,
    method: str = "svd",
    noise_var: float | None = None,
    max_iter: int = 300,
    tol: float = 1e-6,
    prune_tol: float | Sequence[float] = 1e-4,
    sparsity: Sequence[int] | None = None,
    am_sweeps: int = 1,
    pc_modes: Sequence[int] | None = None,
    pc_coupling: float = 1.0,
) -> FitResult:
    """Recover a Kronecker-supported sparse ``x`` from ``y = (A_1 kron ... kron A_I) x + n``.

    Runs in float64 (complex128 when ``y`` or any ``A_i`` is complex) inside
    ``jax.enable_x64(True)``; the dictionary is never formed except by
    ``method="classic"``.

    Args:
        y: Measurements, shape ``(M,)``, ``M = prod m_i``, in the C-order
            ``vec`` of the ``(m_1, ..., m_I)`` measurement tensor.
        factors: ``A_i``, shape ``(m_i, n_i)``.
        method: ``"svd"`` (SVD-KroSBL), ``"am"`` (AM-KroSBL), ``"pc"``
            (PC-KroSBL, block sparsity along ``pc_modes``), ``"classic"``
            (dense EM SBL), ``"komp"`` (Kronecker OMP).
        noise_var: Known noise variance; ``None`` estimates it by EM (SBL) or
            stops Kronecker OMP on ``sparsity`` alone.
        max_iter: EM iteration cap.
        tol: Relative change of ``gamma`` that stops the iterations.
        prune_tol: Factor entries below ``prune_tol * max`` are pruned; a
            sequence gives one threshold per mode (e.g. larger on a mode
            known to hold a single nonzero).
        sparsity: Nonzeros per mode for ``komp`` (optional otherwise unused).
        am_sweeps: Sweeps over the factors per M-step (``am``, ``pc``).
        pc_modes: Block-sparse modes for ``pc`` (default: all).
        pc_coupling: Neighbour coupling ``beta`` for ``pc``.

    Returns:
        The fit, as a :class:`FitResult` with arrays of shape ``(N,)``.

    Raises:
        ValueError: Unknown method, shape mismatch between ``y`` and the
            factors, NaN/inf in the data, non-positive ``noise_var``, bad
            ``sparsity``/``pc_modes``, or an empty estimated support.
    """
    options = {k: v for k, v in locals().items() if k not in ("y", "factors")}
    result = _dispatch(y, factors, options, batched=False)
    if not np.any(np.asarray(result.support)):
        raise ValueError(
            "the estimated support is empty: every hyperparameter was pruned "
            "(y may be pure noise at this noise_var, or prune_tol is too large)"
        )
    return result


def fit_batch(
    y: Any,
    factors: Sequence[Any],
    *,
    method: str = "svd",
    noise_var: Any = None,
    max_iter: int = 300,
    tol: float = 1e-6,
    prune_tol: float | Sequence[float] = 1e-4,
    sparsity: Sequence[int] | None = None,
    am_sweeps: int = 1,
    pc_modes: Sequence[int] | None = None,
    pc_coupling: float = 1.0,
) -> FitResult:
    """:func:`fit` for ``B`` independent problems in one compiled program.

    The program maps the single-problem solver over the leading axis with
    ``lax.map`` (trials run one after another, each to its own convergence);
    :func:`~bayes.models.krosbl.run_sbl` itself is pure and may be ``vmap``-ed.

    Args:
        y: Shape ``(B, M)``.
        factors: ``A_i`` of shape ``(B, m_i, n_i)`` (per problem) or
            ``(m_i, n_i)`` (shared).
        noise_var: ``None``, a scalar or shape ``(B,)``.
        method: As in :func:`fit`.
        max_iter: As in :func:`fit`.
        tol: As in :func:`fit`.
        prune_tol: As in :func:`fit`.
        sparsity: As in :func:`fit`.
        am_sweeps: As in :func:`fit`.
        pc_modes: As in :func:`fit`.
        pc_coupling: As in :func:`fit`.

    Returns:
        The batched :class:`FitResult`, with a leading axis ``B``; an empty support
            is reported in ``support`` rather than raised.
    """
    options = {k: v for k, v in locals().items() if k not in ("y", "factors")}
    return _dispatch(y, factors, options, batched=True)


def compile_fit_batch(y: Any, factors: Sequence[Any], **options: Any) -> tuple[Any, tuple]:
    """Ahead-of-time compile :func:`fit_batch` to time compilation and runs apart.

    Args:
        y: Shape ``(B, M)``.
        factors: As in :func:`fit_batch`.
        **options: Keyword options of :func:`fit_batch`.

    Returns:
        ``(compiled, args)``: ``compiled(*args)`` returns the :class:`FitResult`.
    """
    defaults = dict(
        method="svd", noise_var=None, max_iter=300, tol=1e-6, prune_tol=1e-4, sparsity=None,
        am_sweeps=1, pc_modes=None, pc_coupling=1.0,
    )  # fmt: skip
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}")
    with jax.enable_x64(True):
        return _dispatch(y, factors, {**defaults, **options, "lower": True}, batched=True)
