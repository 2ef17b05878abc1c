"""The chunk loop behind :func:`bayes.sample` for HMC-type methods.

A run is a sequence of global steps ``t = 0 .. num_warmup + num_samples - 1``.
Chunks start at multiples of the chunk size from the start of each phase, so
a resumed run makes exactly the compiled calls an uninterrupted one makes
and reproduces its draws bit for bit (with a checkpoint the chunk size does
not depend on whether a progress bar is shown).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes import sampling
from bayes.checkpoint import data_digest, load_checkpoint, save_checkpoint
from bayes.inference.mcmc.chees import CheesWarmupState

__all__ = ["Run"]


def _to_numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, jax.device_get(tree))


@jax.jit
def _run_keys(seed: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Keys of initial points, chain steps and ChEES warmup (one program, not three)."""
    return tuple(jax.random.split(jax.random.key(seed), 3))


def _mass_matrix_attr(states: Any) -> dict[str, list[str]]:
    """``{"mass_matrix": kinds}`` of chain states (empty mid-ChEES warmup)."""
    imm = getattr(getattr(states, "tuning", None), "inverse_mass_matrix", None)
    return {} if imm is None else {"mass_matrix": sampling.mass_matrix_kinds(imm)}


def _chain_mesh(num_chains: int) -> Any:
    """A one-axis mesh ``("chains",)`` over the devices, or None.

    None when there is one device or the chains do not divide evenly among them.
    """
    devices = jax.devices()
    if len(devices) < 2 or num_chains % len(devices):
        return None
    from jax.sharding import Mesh

    return Mesh(np.array(devices), ("chains",))


def _shard_chains(tree: Any, num_chains: int) -> Any:
    """Split the chain axis across devices when there are several and it divides evenly."""
    mesh = _chain_mesh(num_chains)
    if mesh is None or isinstance(tree, CheesWarmupState):
        return tree  # the joint ChEES state also holds leaves shared by all chains
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("chains")))


class Run:
    """One HMC-type run: initialise or resume, advance in chunks, assemble ``InferenceData``."""

    def __init__(self, target, method, settings, num_chains, num_warmup, num_samples, seed,
                 checkpoint):  # fmt: skip
        self.target, self.method, self.settings = target, method, settings
        self.num_chains, self.num_warmup, self.num_samples = num_chains, num_warmup, num_samples
        self.seed, self.checkpoint = seed, checkpoint
        self.total = num_warmup + num_samples
        from bayes.inference.mcmc import schedule

        # ChEES warms up in two phases, both chunked: per-chain window
        # adaptation (NUTS) for the first num_adapt steps, then the joint ChEES
        # adaptation; NUTS and HMC adapt throughout.
        self.num_adapt = num_warmup
        if method == "chees":
            self.num_adapt = min(int(settings.window_fraction * num_warmup), num_warmup - 1)
        self.stage, self.window_end = schedule(self.num_adapt)
        self.timings = {"compile_s": 0.0, "warmup_s": 0.0, "sampling_s": 0.0}
        self.draws: list[Any] = []
        self.divergences = {"warmup": 0, "sampling": 0}
        self.grad_evals = 0
        self._mark = 0.0  # end of the last collection, for phase timings
        self.chunk_size = settings.chunk_size
        # (method, steps, diagonal sampling metric) -> chunk program
        self._programs: dict[tuple[str, int, bool], Any] = {}
        self._selects_metric = method != "chees" and settings.dense_mass == "auto"

    def fingerprint(self) -> dict[str, Any]:
        spec = self.target.spec
        return {
            "method": self.method,
            # the chunk length in use, so that a run resumes only with the same chunks
            "settings": {**asdict(self.settings), "chunk_size": self.chunk_size},
            "num_chains": self.num_chains,
            "num_warmup": self.num_warmup,
            "num_samples": self.num_samples,
            "seed": self.seed,
            "model": f"{getattr(spec.fn, '__module__', '')}.{getattr(spec.fn, '__qualname__', '')}",
            "data": data_digest(spec.static_data, self.target.data),
            "x64": bool(jax.config.jax_enable_x64),
        }

    def _save(self, t: int, states: Any) -> None:
        save_checkpoint(self.checkpoint, {
            "fingerprint": self.fingerprint(), "t": t, "states": _to_numpy(states),
            "draws": self._stacked_draws(), "divergences": self.divergences,
            "grad_evals": self.grad_evals, "timings": self.timings,
            "rng_key": np.asarray(jax.random.key_data(self.run_key)),
        })  # fmt: skip

    def _stacked_draws(self) -> Any:
        if not self.draws:
            return None
        return jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *self.draws)

    def _start(self) -> tuple[int, Any]:
        if -(2**31) <= self.seed < 2**31:
            keys = _run_keys(self.seed)
        else:  # a traced 32-bit integer cannot hold it; the eager path takes 64-bit seeds
            keys = jax.random.split(jax.random.key(self.seed), 3)
        init_key, self.run_key, self.chees_key = keys
        if self.checkpoint is not None:
            payload = load_checkpoint(self.checkpoint, self.fingerprint())
            if payload is not None:
                self.draws = [] if payload["draws"] is None else [payload["draws"]]
                self.divergences = payload["divergences"]
                self.grad_evals = payload["grad_evals"]
                self.timings = payload["timings"]
                states = jax.tree.map(jnp.asarray, payload["states"])
                return payload["t"], _shard_chains(states, self.num_chains)
        points, compile_s = self.target._initial_points(init_key, self.num_chains)
        self.timings["compile_s"] += compile_s
        points = _shard_chains(points, self.num_chains)
        if self.method == "chees" and self.num_adapt == 0:  # ChEES straight from the points
            return 0, points
        states, compile_s = sampling._init_states(self.target, self.method, self.settings, points)
        self.timings["compile_s"] += compile_s
        return 0, states

    def _chees_boundary(self, states: Any, t: int) -> Any:
        """ChEES' phase changes at ``t``: start its joint adaptation, or fix its tuning.

        Decided by the state's type as well as ``t``, so that a run resumed
        from a checkpoint written at a boundary crosses it too.
        """
        if self.method != "chees":
            return states
        chees = isinstance(states, CheesWarmupState)
        if t == self.num_adapt and t < self.num_warmup and not chees:
            fn = sampling._chees_init
        elif t == self.num_warmup and chees:
            fn = sampling._chees_final
        else:
            return states
        t0 = time.perf_counter()
        states = _shard_chains(states, self.num_chains)
        states, compile_s = fn(self.target, self.settings, states, self.num_warmup -
                               self.num_adapt, self.num_samples)  # fmt: skip
        jax.block_until_ready(states)
        self.timings["compile_s"] += compile_s
        self.timings["warmup_s"] += time.perf_counter() - t0 - compile_s
        return states

    def _metric_boundary(self, states: Any, t: int) -> Any:
        """At the end of an ``"auto"`` warmup: a diagonal metric if every chain chose one.

        Decided from the states as well as ``t``, so that a run resumed from a
        checkpoint written at the boundary crosses it the same way.
        """
        if not (self._selects_metric and t == self.num_warmup and self._dense(states)):
            return states
        kinds = sampling.mass_matrix_kinds(states.tuning.inverse_mass_matrix)
        if "dense" not in kinds:
            states = _shard_chains(sampling.diagonal_states(states), self.num_chains)
        return states

    @staticmethod
    def _dense(states: Any) -> bool:
        """Whether the chains hold ``(d, d)`` matrices (else ``(d,)`` diagonals)."""
        return np.ndim(states.tuning.inverse_mass_matrix) == 3

    def _dispatch(self, states: Any, t: int) -> tuple[Any, int, Any, float]:
        """Launch the chunk starting at step ``t``.

        Returns ``(states, n, info, dispatched)``: outputs not yet computed,
        and the time of the launch (after any compilation).

        JAX dispatches asynchronously, so the chunk runs while the caller
        collects the previous one.
        """
        size = self.chunk_size
        chees = self.method == "chees" and self.num_adapt <= t < self.num_warmup
        phase_end = self.num_adapt if t < self.num_adapt else self.total
        phase_end = self.num_warmup if chees else phase_end
        n = min(size, phase_end - t)
        if chees:  # the joint ChEES adaptation
            return self._dispatch_chees(states, t, n)
        stage = self.stage[t : t + n] if t < self.num_adapt else np.zeros(n, np.int32)
        window_end = self.window_end[t : t + n] if t < self.num_adapt else np.zeros(n, bool)
        # NumPy arguments: the compiled program takes them as they are, where
        # jnp.asarray would run (and in a fresh process load) small eager programs
        args = (self.run_key, np.int32(t), np.int32(self.num_adapt), stage, window_end)
        # ChEES' first warmup phase is per-chain window adaptation with NUTS
        method = "nuts" if self.method == "chees" and t < self.num_adapt else self.method
        # XLA may return some state leaves replicated across devices, but the
        # program is compiled for the chain sharding of its first call
        states = _shard_chains(states, self.num_chains)
        # an auto run samples with the diagonal metric once every chain chose it
        diagonal = self._selects_metric and not self._dense(states)
        program_key = (method, n, diagonal)
        program = self._programs.get(program_key)
        if program is None:  # looked up once per run: the lookup hashes every argument's shape
            settings = replace(self.settings, dense_mass=False) if diagonal else self.settings
            program, compile_s = sampling._chunk_program(
                self.target, method, settings, states, args, _chain_mesh(self.num_chains)
            )
            self.timings["compile_s"] += compile_s
            self._programs[program_key] = program
        dispatched = time.perf_counter()
        states, info = program(states, self.target.data, *args)
        return states, n, info, dispatched

    def _dispatch_chees(self, states: Any, t: int, n: int) -> tuple[Any, int, Any, float]:
        steps = np.arange(t - self.num_adapt, t - self.num_adapt + n, dtype=np.int32)
        program = self._programs.get(("chees-warmup", n, False))
        if program is None:
            program, compile_s = sampling._chees_chunk_program(
                self.target, self.settings, states, self.chees_key, steps,
                self.num_warmup - self.num_adapt, self.num_samples,
            )  # fmt: skip
            self.timings["compile_s"] += compile_s
            self._programs[("chees-warmup", n, False)] = program
        dispatched = time.perf_counter()
        states, info = program(states, self.target.data, self.chees_key, steps)
        return states, n, info, dispatched

    def _collect(self, t: int, info: Any, started: float) -> None:
        """Bring the chunk starting at step ``t`` to the host and record it.

        ``started`` is when the chunk could start running: its dispatch, or
        the end of the previous collection if that came later.
        """
        info = _to_numpy(info)
        phase = "warmup" if t < self.num_warmup else "sampling"
        self.timings[f"{phase}_s"] += time.perf_counter() - started
        info = jax.tree.map(lambda x: np.swapaxes(x, 0, 1), info)
        self.divergences[phase] += int(info.diverging.sum())
        self.grad_evals += int(info.n_steps.sum())
        if phase == "sampling":
            self.draws.append(info)

    def _done(self, t: int, states: Any, n: int, bar) -> None:
        """Bookkeeping after steps up to ``t`` are recorded: checkpoint, progress, seam."""
        if self.checkpoint is not None:
            self._save(t, states)
        chees = self.method == "chees" and self.num_adapt <= t < self.num_warmup
        # no refresh here: the bar redraws once, at the update, with the new count
        phase = "warmup (ChEES)" if chees else "warmup" if t < self.num_warmup else "sampling"
        bar.set_description(phase, refresh=False)
        bar.set_postfix(divergences=sum(self.divergences.values()), refresh=False)
        bar.update(n)
        sampling._after_chunk({"t": t, "total": self.total})

    def execute(self, progress: bool):
        from bayes import _programs
        from bayes._progress import progress_enabled

        if self.chunk_size is None:
            self.chunk_size = sampling.auto_chunk_size(
                (self.num_adapt, self.num_warmup - self.num_adapt, self.num_samples),
                interactive=progress_enabled(progress) or self.checkpoint is not None,
            )
        with _programs.run():  # records the programs used, prefetched by the next process
            return self._execute(progress)

    def _execute(self, progress: bool):
        from bayes._progress import progress_bar

        t, states = self._start()
        done = t  # steps recorded; t counts steps dispatched
        interrupted = False
        # The next chunk is dispatched before the previous one is brought to
        # the host: waiting on each chunk idles XLA's threads between chunks,
        # which cost about 5 ms per chunk on cheap posteriors.
        pending = None  # (start step, steps, info, states after, dispatch time)
        with progress_bar(total=self.total, desc="warmup", enabled=progress, unit="draw") as bar:
            bar.update(t)
            try:
                while t < self.total or pending is not None:
                    # phase changes (ChEES', auto metric) wait for the chunk in flight
                    chees = self.method == "chees" and t in (self.num_adapt, self.num_warmup)
                    boundary = chees or (self._selects_metric and t == self.num_warmup)
                    if boundary and pending is None:
                        states = self._metric_boundary(self._chees_boundary(states, t), t)
                        boundary = False
                    launched = None
                    if t < self.total and not boundary:
                        states, n, info, dispatched = self._dispatch(states, t)
                        launched = (t, n, info, states, dispatched)
                        t += n
                    if pending is not None:
                        start, n, info, after, dispatched = pending
                        self._collect(start, info, max(dispatched, self._mark))
                        self._mark = time.perf_counter()
                        done = start + n
                        self._done(done, after, n, bar)
                    pending = launched
            except KeyboardInterrupt:
                if not self.draws:
                    raise
                interrupted = True
        return self._inference_data(done, interrupted, states)

    def _inference_data(self, t: int, interrupted: bool, states: Any):
        from bayes.convert import run_attrs, to_inference_data

        draws = self._stacked_draws()
        posterior, log_lik = self.target.postprocess(draws.position)
        stats = {
            "diverging": draws.diverging, "energy": draws.energy, "lp": draws.lp,
            "acceptance_rate": draws.acceptance_rate, "step_size": draws.step_size,
            "n_steps": draws.n_steps,
        }  # fmt: skip
        if self.method == "nuts":
            stats["tree_depth"] = draws.tree_depth
        attrs = run_attrs(
            self.method,
            asdict(self.settings),
            num_chains=self.num_chains,
            num_warmup=self.num_warmup,
            num_samples=self.num_samples,
            num_draws=int(draws.lp.shape[1]),
            seed=self.seed,
            partial=interrupted or t < self.total,
            divergences=self.divergences["sampling"],
            warmup_divergences=self.divergences["warmup"],
            num_gradient_evaluations=self.grad_evals,
            checkpoint=None if self.checkpoint is None else os.fspath(self.checkpoint),
            **_mass_matrix_attr(states),
            **{k: float(v) for k, v in self.timings.items()},
        )
        return to_inference_data(
            jax.device_get(posterior),
            sample_stats=stats,
            log_likelihood=jax.device_get(log_lik),
            observed_data=self.target.observed_data,
            attrs=attrs,
        )
