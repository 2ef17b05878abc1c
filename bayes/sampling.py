"""``bayes.sample``: one call from a NumPyro model (or a log-density) to ``InferenceData``.

HMC-type methods (``"nuts"``, ``"hmc"``, ``"chees"``) run here on BlackJAX
kernels (see :mod:`bayes.inference.mcmc`); ``"smc"`` and ``"vi"`` dispatch to
``bayes.smc_sampling.sample_smc`` and ``bayes.vi_sampling.sample_vi``.

What this module adds around the kernels:

- compile once: the chunk program is compiled ahead of time and kept in a
  process-wide cache keyed by model, settings and shapes, so calling
  :func:`sample` again with the same model and shapes neither traces nor
  compiles; JAX's persistent cache (enabled here) makes a new process cheap;
- chunked runs: chains advance ``chunk_size`` steps per compiled call; in
  between, the progress bar (draws/s, phase, divergences) is updated and the
  checkpoint is rewritten atomically;
- resume: with ``checkpoint=PATH`` a killed run continues from its last chunk
  and ends with exactly the draws of an uninterrupted run with the same seed;
- Ctrl-C returns the draws so far with ``attrs["partial"] = 1``.
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import arviz as az

__all__ = [
    "AUTO_DENSE_MAX_DIMENSIONS",
    "EXTERNAL_METHODS",
    "HMC_METHODS",
    "METHODS",
    "auto_chunk_size",
    "clear_cache",
    "mass_matrix_kinds",
    "resolve_mass_matrix",
    "sample",
]

HMC_METHODS = ("nuts", "hmc", "chees")
EXTERNAL_METHODS = {
    "smc": ("bayes.smc_sampling", "sample_smc"),
    "vi": ("bayes.vi_sampling", "sample_vi"),
}
METHODS = (*HMC_METHODS, *EXTERNAL_METHODS)
AUTO_DENSE_MAX_DIMENSIONS = 100
# Compiled programs of recent runs, most recently used last. Bounded because each
# one holds XLA memory mappings (about 18 on the CPU) that a process has a
# limited number of, and `jax.clear_caches()` cannot release what we hold.
_COMPILED: OrderedDict[Any, Any] = OrderedDict()
_MAX_COMPILED = 64


def clear_cache() -> None:
    """Release every compiled program this process holds: ours and JAX's.

    Empties the programs :func:`sample` keeps for re-runs with the same shapes
    and calls ``jax.clear_caches()``. On the CPU each program holds about 18
    memory mappings, and Linux caps a process at ``vm.max_map_count`` of them
    (65530 by default), so a long-lived process that samples many different
    models should call this between them. The persistent compilation cache on
    disk is kept: a program needed again is loaded from it, not recompiled.
    """
    import jax

    _COMPILED.clear()
    jax.clear_caches()


@dataclass(frozen=True)
class Settings:
    """Settings of the HMC-type methods (the ``**options`` of :func:`sample`).

    Attributes:
        max_tree_depth: Maximum NUTS tree depth (doublings).
        num_integration_steps: Leapfrog steps per ``"hmc"`` transition.
        target_acceptance_rate: Step-size adaptation target (ChEES default 0.651).
        dense_mass: Mass matrix of NUTS and HMC. ``"auto"`` (default): for 2 to
            ``AUTO_DENSE_MAX_DIMENSIONS`` (100) unconstrained dimensions each chain
            adapts a dense matrix and keeps it only where its warmup draws show
            correlations beyond sampling noise, else the diagonal (the chain's
            choice is in the ``mass_matrix`` attribute); outside that range, and
            for ChEES, diagonal. ``True``: dense; ``False``: diagonal.
        initial_step_size: Starting step size of warmup.
        learning_rate: Adam learning rate of ChEES trajectory-length adaptation.
        chunk_size: Steps per compiled call (progress and checkpoint granularity).
            ``None`` (default): 100 with a progress bar or a checkpoint, else
            about a quarter of the longer phase (see :func:`auto_chunk_size`).
        divergence_threshold: Energy error that flags a divergent transition.
        window_fraction: ChEES: fraction of ``num_warmup`` run first as per-chain
            window adaptation (NUTS), whose step sizes and mass matrices
            precondition the joint ChEES adaptation of the rest (0: ChEES from
            the initial points with an identity mass matrix).
        chain_method: ``"vectorized"`` (default): the chains of a device advance
            together under ``vmap``, each step lasting as long as the longest
            chain's trajectory. ``"sequential"``: each chain runs its chunk of
            steps on its own (``lax.map`` over chains), the cost the sum of the
            trajectories rather than the number of chains times the longest. On a
            CPU that is faster for models whose gradient is costly (large data,
            a loop over time); small models and accelerators gain from
            vectorizing. The draws agree up to floating-point rounding.
    """

    max_tree_depth: int = 10
    num_integration_steps: int = 16
    target_acceptance_rate: float | None = None
    dense_mass: bool | str = "auto"
    initial_step_size: float = 1.0
    learning_rate: float = 0.025
    chunk_size: int | None = None
    divergence_threshold: float = 1000.0
    window_fraction: float = 0.25
    chain_method: str = "vectorized"


def _external(method: str) -> Callable:
    module_name, attr = EXTERNAL_METHODS[method]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise ValueError(
            f"method {method!r} needs {module_name}, which this installation does not have"
        ) from None
    return getattr(module, attr)


def _check(method: str, num_chains: int, num_warmup: int, num_samples: int) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    for name, value, low in (("num_chains", num_chains, 1), ("num_warmup", num_warmup, 0),
                             ("num_samples", num_samples, 1)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if method == "chees" and num_warmup < 1:
        raise ValueError("method 'chees' needs num_warmup >= 1 (its tuning comes from warmup)")


def _settings(method: str, options: dict[str, Any]) -> Settings:
    valid = set(Settings.__dataclass_fields__)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
            f"valid: initial_position, initial_positions, {', '.join(sorted(valid))}"
        )
    settings = Settings(**options)
    if settings.target_acceptance_rate is None:
        rate = 0.651 if method == "chees" else 0.8
        settings = Settings(**{**asdict(settings), "target_acceptance_rate": rate})
    if not 0.0 <= settings.window_fraction < 1.0:
        raise ValueError(f"window_fraction must be in [0, 1), got {settings.window_fraction}")
    if not (isinstance(settings.dense_mass, bool) or settings.dense_mass == "auto"):
        raise ValueError(f"dense_mass must be True, False or 'auto', got {settings.dense_mass!r}")
    if settings.chain_method not in ("vectorized", "sequential"):
        raise ValueError(
            f"chain_method must be 'vectorized' or 'sequential', got {settings.chain_method!r}"
        )
    if settings.chunk_size is not None and (
        not isinstance(settings.chunk_size, int) or settings.chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be an integer >= 1, got {settings.chunk_size!r}")
    return settings


def resolve_mass_matrix(method: str, settings: Settings, num_dimensions: int) -> Settings:
    """``settings`` with ``dense_mass="auto"`` made ``False`` where no choice is made.

    The dense-or-diagonal choice is made for NUTS and HMC with 2 to
    ``AUTO_DENSE_MAX_DIMENSIONS`` dimensions: in one dimension the two agree,
    and above the limit a warmup window rarely has enough draws to estimate a
    dense matrix well, while every step factorizes it (O(d^3)).
    """
    if settings.dense_mass == "auto" and (
        method == "chees" or not 2 <= num_dimensions <= AUTO_DENSE_MAX_DIMENSIONS
    ):
        return replace(settings, dense_mass=False)
    return settings


def mass_matrix_kinds(inverse_mass_matrix: Any) -> list[str]:
    """Per chain, ``"dense"`` or ``"diagonal"``, from the inverse mass matrices in force.

    Args:
        inverse_mass_matrix: Shape ``(num_chains, d)`` or ``(num_chains, d, d)``.
    """
    import numpy as np

    imm = np.asarray(inverse_mass_matrix)
    if imm.ndim == 2:
        return ["diagonal"] * imm.shape[0]
    dense = np.any(imm * (1 - np.eye(imm.shape[-1])) != 0, axis=(1, 2))
    return ["dense" if d else "diagonal" for d in dense]


def diagonal_states(states: Any) -> Any:
    """Window-adapted chain states with dense ``(d, d)`` matrices turned into ``(d,)`` diagonals.

    For ``dense_mass="auto"`` runs whose chains all chose a diagonal matrix:
    sampling then runs BlackJAX's diagonal metric, whose steps cost O(d)
    instead of the dense metric's O(d^3) factorization and O(d^2) products.
    """
    import numpy as np

    # in NumPy: eager JAX operations would each be a small program to load in a fresh process
    def diag(x):
        return np.diagonal(np.asarray(x), axis1=-2, axis2=-1).copy()

    tuning = states.tuning
    mm = tuning.mm_state
    mm = mm._replace(inverse_mass_matrix=diag(mm.inverse_mass_matrix),
                     wc_state=mm.wc_state._replace(m2=diag(mm.wc_state.m2)))  # fmt: skip
    return states._replace(
        tuning=tuning._replace(mm_state=mm, inverse_mass_matrix=diag(tuning.inverse_mass_matrix))
    )


def auto_chunk_size(phases: tuple[int, ...], *, interactive: bool, minimum: int = 100) -> int:
    """Steps per compiled call when ``chunk_size`` is not given.

    Every call of the chunk program costs a dispatch, host transfers of its
    draws and a pause of XLA's threads: about a millisecond, 5-15% of a
    cheap posterior's 100 steps. With a progress bar or a checkpoint, 100
    steps keep the bar moving and the checkpoints frequent. Without them a
    phase runs in about four calls, still enough for Ctrl-C to keep some
    draws, with one length for all phases where one divides them, so a run
    compiles one chunk program.

    Args:
        phases: Lengths of the chunked phases (window-adaptation warmup,
            ChEES' joint adaptation, sampling); zeros are ignored.
        interactive: A progress bar or checkpoint is on.
        minimum: Chunk length with ``interactive`` and the smallest automatic one.

    Returns:
        The chunk length.
    """
    phases = tuple(p for p in phases if p > 0)
    if interactive or not phases:
        return minimum
    cap = max(minimum, -(-max(phases) // 4))
    common = math.gcd(*phases)
    # the largest divisor of every phase not above the cap, so no phase ends in a short chunk
    divisors = [d for d in range(min(cap, common), minimum - 1, -1) if common % d == 0]
    return divisors[0] if divisors else cap


def _avals(tree: Any) -> tuple:
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((jnp.shape(x), str(jnp.result_type(x))) for x in leaves))


def _compile(name: str, key: Any, builder: Callable[[], Callable], *args: Any, target=None):
    """Ahead-of-time compile ``builder()`` for ``args``; cached by name, key and shapes.

    A program not yet built in this process is looked up on disk first
    (:mod:`bayes._programs`, keyed without tracing it; ``target`` is the
    target whose spec appears in ``key``), and one that took a while to
    build is stored there for the next process.
    """
    import jax

    from bayes import _programs

    full_key = (name, key, bool(jax.config.jax_enable_x64), _avals(args))
    if full_key in _COMPILED:
        _COMPILED.move_to_end(full_key)
        return _COMPILED[full_key], 0.0
    t0 = time.perf_counter()
    disk_key = _programs.program_key(name, key, args, target)

    def build():
        started = time.perf_counter()
        lowered = jax.jit(builder()).lower(*args)
        if disk_key is None:
            return lowered.compile()
        return _programs.compile_and_store(disk_key, lowered, started)

    loaded = None if disk_key is None else _programs.load(disk_key)
    compiled = build() if loaded is None else _programs.Checked(loaded, disk_key, build)
    _COMPILED[full_key] = compiled
    while len(_COMPILED) > _MAX_COMPILED:
        _COMPILED.popitem(last=False)
    return compiled, time.perf_counter() - t0


def _step_fns(method: str, settings: Settings):
    from bayes.inference.mcmc import build_step

    return build_step(
        method,
        max_tree_depth=settings.max_tree_depth,
        num_integration_steps=settings.num_integration_steps,
        target_acceptance_rate=settings.target_acceptance_rate,
        is_mass_matrix_diagonal=settings.dense_mass is False,
        select_dense=settings.dense_mass == "auto",
        divergence_threshold=settings.divergence_threshold,
    )


def _init_states(target, method: str, settings: Settings, points):
    """Chain states at step 0 from ``points = (positions, logdensity, grad)``.

    Window adaptation (NUTS, HMC, and the first part of ChEES warmup) starts
    from ``settings.initial_step_size``. One compiled program rather than a
    dozen small eager operations, each of which would cost a trace, a
    lowering and a compilation-cache read in a fresh process.
    Returns ``(states, compile_s)``.
    """
    step_method = "nuts" if method == "chees" else method

    def build():
        import jax
        from blackjax.mcmc.hmc import HMCState

        init, _ = _step_fns(step_method, settings)

        def fn(points):
            return jax.vmap(lambda s: init(s, settings.initial_step_size))(HMCState(*points))

        return fn

    fn, compile_s = _compile("init", (step_method, settings), build, points)
    return fn(points), compile_s


def _chees_fns(target, settings: Settings, data, num_steps: int, num_samples: int):
    from bayes.inference.mcmc.chees import chees_adaptation

    spec = target.spec
    return chees_adaptation(
        lambda x: spec.logdensity(x, data), target.example_position, num_steps=num_steps,
        max_sampling_steps=num_samples, target_acceptance_rate=settings.target_acceptance_rate,
        learning_rate=settings.learning_rate,
    )  # fmt: skip


def _chees_init(target, settings: Settings, states, num_steps: int, num_samples: int):
    """Start of the joint ChEES adaptation, preconditioned by the window adaptation before it.

    ``states`` are the window-adapted ``ChainState`` s, or, when that phase
    is empty, the ``(positions, logdensity, grad)`` initial points (then
    ChEES starts from an identity mass matrix and ``initial_step_size``).
    Returns ``(CheesWarmupState, compile_s)``.
    """
    import jax.numpy as jnp

    from bayes.inference.mcmc import ChainState

    if isinstance(states, ChainState):
        positions = states.kernel.position
        imm, step_sizes = states.tuning.inverse_mass_matrix, states.tuning.step_size
    else:
        positions, num_chains, d = states[0], jnp.shape(states[1])[0], target.num_dimensions
        eye = jnp.eye(d) if settings.dense_mass is True else jnp.ones(d)
        imm = jnp.broadcast_to(eye, (num_chains, *eye.shape))
        step_sizes = jnp.full((num_chains,), settings.initial_step_size, jnp.result_type(float))

    def build():
        def fn(positions, imm, step_sizes, data):
            init, _, _ = _chees_fns(target, settings, data, num_steps, num_samples)
            return init(positions, imm, step_sizes)

        return fn

    key = (target.spec, settings, num_steps, num_samples)
    args = (positions, imm, step_sizes, target.data)
    fn, compile_s = _compile("chees_init", key, build, *args, target=target)
    return fn(*args), compile_s


def _chees_chunk_program(target, settings: Settings, state, rng_key, steps, num_steps: int,
                         num_samples: int):  # fmt: skip
    """Compiled ``(state, data, rng_key, steps) -> (state, CheesWarmupInfo)`` of ChEES steps."""
    from bayes.inference.mcmc.chees import chees_run_chunk

    def build():
        def fn(state, data, rng_key, steps):
            _, step, _ = _chees_fns(target, settings, data, num_steps, num_samples)
            return chees_run_chunk(step, state, rng_key, steps, num_steps)

        return fn

    key = (target.spec, settings, num_steps, num_samples)
    return _compile("chees_chunk", key, build, state, target.data, rng_key, steps, target=target)


def _chees_final(target, settings: Settings, state, num_steps: int, num_samples: int):
    """``ChainState`` s with the fixed ChEES tuning after warmup; ``(states, compile_s)``."""

    def build():
        def fn(state, data):
            _, _, final = _chees_fns(target, settings, data, num_steps, num_samples)
            return final(state)

        return fn

    key = (target.spec, settings, num_steps, num_samples)
    fn, compile_s = _compile("chees_final", key, build, state, target.data, target=target)
    return fn(state, target.data), compile_s


def _chunk_program(target, method: str, settings: Settings, states, args, mesh=None):
    """The compiled program advancing every chain by one chunk of steps.

    With a ``mesh`` (axis ``"chains"``) each device runs its block of chains as
    a program of its own (``shard_map``): the trajectory loops of NUTS then end
    per device, where a program over the sharded batch would synchronise the
    devices at every iteration of every chain's loop.
    """
    from bayes.inference.mcmc import run_chunk

    _, step = _step_fns(method, settings)
    spec = target.spec

    def build():
        def fn(states, data, rng_key, start, num_warmup, stage, window_end, axis=None):
            return run_chunk(step, spec.logdensity, states, data, rng_key, start, num_warmup,
                             stage, window_end, chain_axis_name=axis,
                             sequential=settings.chain_method == "sequential")  # fmt: skip

        if mesh is None:
            return fn
        import functools

        import jax
        from jax.sharding import PartitionSpec as P

        chains, shared = P("chains"), P()
        return jax.shard_map(
            functools.partial(fn, axis="chains"),
            mesh=mesh,
            in_specs=(chains, shared, shared, shared, shared, shared, shared),
            out_specs=(chains, P(None, "chains")),
            check_vma=False,
        )

    key = (spec, method, settings, None if mesh is None else mesh.devices.shape)
    return _compile("chunk", key, build, states, target.data, *args, target=target)


def _after_chunk(progress: dict[str, Any]) -> None:
    """Called after every chunk (and checkpoint write); a seam for tests and tools."""


def sample(
    model: Callable,
    data: Mapping[str, Any] | None = None,
    *,
    method: str = "nuts",
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    seed: int = 0,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    **options: Any,
) -> az.InferenceData:
    """Sample the posterior of a NumPyro model (or a log-density) into ``InferenceData``.

    Args:
        model: A NumPyro model called as ``model(**data)``, or a JAX log-density
            ``logdensity_fn(position) -> scalar`` over a pytree of unconstrained
            parameters, called as ``logdensity_fn(position, **data)``, together
            with ``initial_position=`` (one chain's pytree) or
            ``initial_positions=`` (leaves ``(num_chains, ...)``: a warm start).
        data: Keyword arguments of the model or log-density (arrays, numbers); integers are
            treated as constants (sizes), arrays are traced.
        method: ``"nuts"`` (default) or ``"hmc"`` with Stan's window adaptation
            of step size and mass matrix (dense where the warmup finds
            correlations, else diagonal: ``dense_mass`` in :class:`Settings`);
            ``"chees"`` (ChEES-HMC, chains adapted jointly: use many chains);
            ``"smc"``, ``"vi"`` (dispatched to their modules).
        num_chains: Chains, run vectorized (split across devices when several).
        num_warmup: Warmup (adaptation) steps per chain, discarded.
        num_samples: Kept draws per chain.
        seed: Seed of every random choice of the run.
        progress: Show a progress bar (draws/s, phase, divergences).
        checkpoint: File to write the run's state to after every chunk; when
            it exists, the run continues from it (same settings required).
        **options: ``initial_position`` or ``initial_positions`` (log-density
            targets) and the fields of
            :class:`Settings` (``max_tree_depth``, ``dense_mass``,
            ``target_acceptance_rate``, ``chunk_size``, ...).

    Returns:
        ``arviz.InferenceData`` with groups ``posterior`` (constrained values
            named as the sample and deterministic sites, shape ``(num_chains,
            num_samples, ...)``), ``sample_stats`` (``diverging``, ``energy``,
            ``tree_depth``, ``n_steps``, ``acceptance_rate``, ``step_size``, ``lp``),
            ``log_likelihood`` and ``observed_data`` (NumPyro models). ``attrs``
            hold the method, settings, versions, ``compile_s``, ``warmup_s``,
            ``sampling_s``, ``partial`` (1 after Ctrl-C) and
            ``mass_matrix`` (JSON list: ``"dense"`` or ``"diagonal"`` per chain).

    Raises:
        ValueError: Unknown method or option, bad sizes, data that do not fit
            the model (:class:`~bayes.target.DataError`), no finite initial
            point (:class:`~bayes.target.InitializationError`), or a checkpoint
            of another run (:class:`~bayes.checkpoint.CheckpointError`).
    """
    _check(method, num_chains, num_warmup, num_samples)
    if method in EXTERNAL_METHODS:
        if checkpoint is not None:
            raise ValueError(f"checkpoint is supported by {', '.join(HMC_METHODS)}, not {method!r}")
        return _external(method)(
            model, data, num_chains=num_chains, num_warmup=num_warmup,
            num_samples=num_samples, seed=seed, progress=progress, **options,
        )  # fmt: skip
    from bayes.config import enable_compilation_cache
    from bayes.target import as_target

    enable_compilation_cache()
    initial_position = options.pop("initial_position", None)
    initial_positions = options.pop("initial_positions", None)
    settings = _settings(method, options)
    target = as_target(model, data, initial_position=initial_position,
                       initial_positions=initial_positions)  # fmt: skip
    settings = resolve_mass_matrix(method, settings, target.num_dimensions)
    from bayes._mcmc_run import Run

    run = Run(target, method, settings, num_chains, num_warmup, num_samples, seed, checkpoint)
    return run.execute(progress)
