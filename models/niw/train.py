"""Meta-training loop and few-shot evaluation metrics shared by all methods.

Metrics per test task, then mean and 95% confidence half-width (``1.96 sd /
sqrt(num_tasks)``) over tasks:

- regression: MSE of the predictive mean; NLL of the predictive mixture
  ``mean_s N(y; f_s(x), noise^2)``; calibration error, the mean absolute gap
  between nominal and empirical coverage of central intervals of the
  moment-matched Gaussian predictive at levels 0.1, 0.2, ..., 0.9, 0.95;
- classification: accuracy, NLL of ``mean_s softmax(f_s(x))`` and expected
  calibration error (15 equal-width confidence bins).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

from .common import MetaLearner
from .data import Episode, check_episode, check_task

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "LEVELS",
    "classification_metrics",
    "evaluate",
    "meta_train",
    "regression_metrics",
    "summarize",
]

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def meta_train(
    learner: MetaLearner,
    sample_fn: Callable[[jax.Array], Episode],
    *,
    rng_key: jax.Array,
    num_iterations: int,
    chunk: int = 100,
    progress: bool = False,
    desc: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Run ``num_iterations`` meta-iterations, ``chunk`` at a time inside ``lax.scan``.

    Args:
        learner: The method.
        sample_fn: ``sample_fn(rng_key) -> Episode`` drawing one batch of tasks.
        rng_key: PRNG key.
        num_iterations: Meta-iterations (a multiple of ``chunk`` is run; at least one chunk).
        chunk: Iterations per compiled call.
        progress: Show a progress bar.
        desc: Its label.

    Returns:
        ``(state, record)`` with the per-chunk mean of the step's info and the
            seconds per meta-iteration measured after the first (compiling) chunk.
    """
    from bayes._progress import progress_bar

    if num_iterations < 1 or chunk < 1:
        raise ValueError(f"num_iterations and chunk must be >= 1, got {num_iterations}, {chunk}")
    k_init, k_run = jax.random.split(rng_key)
    # Strong dtypes: a weakly typed leaf would change type after the first
    # step and force a second compilation of the chunk.
    state = jax.tree.map(lambda a: jnp.asarray(a, dtype=a.dtype), learner.init(k_init))
    check_episode(jax.eval_shape(sample_fn, k_init))

    @jax.jit
    def run_chunk(state, key):
        def body(st, k):
            k_s, k_t = jax.random.split(k)
            return learner.step(k_t, st, sample_fn(k_s))

        state, infos = jax.lax.scan(body, state, jax.random.split(key, chunk))
        return state, jax.tree.map(jnp.mean, infos)

    num_chunks = max(1, round(num_iterations / chunk))
    history, times = [], []
    with progress_bar(total=num_chunks, desc=desc, enabled=progress) as bar:
        for key in jax.random.split(k_run, num_chunks):
            t0 = time.perf_counter()
            state, info = jax.block_until_ready(run_chunk(state, key))
            times.append(time.perf_counter() - t0)
            history.append(jax.tree.map(float, info))
            bar.update(1)
    steady = times[1:] or times
    return state, {
        "history": history,
        "num_iterations": num_chunks * chunk,
        "seconds_per_iteration": float(np.mean(steady)) / chunk,
    }


def regression_metrics(outputs: jax.Array, y: jax.Array, noise_scale: jax.Array) -> dict:
    """Metrics of one regression task.

    Args:
        outputs: ``(S, N_q, 1)`` network draws.
        y: ``(N_q, 1)`` targets.
        noise_scale: Observation noise standard deviation.

    Returns:
        ``{"mse", "nll", "calibration_error", "coverage", "epistemic_variance"}`` (NLL
            per query point; ``coverage`` of shape ``(len(LEVELS),)``; the last is the
            mean variance of the draws, the predictive variance without the noise).
    """
    mean = jnp.mean(outputs, axis=0)
    epistemic = jnp.var(outputs, axis=0)
    var = epistemic + noise_scale**2
    comp = norm.logpdf(y[None], outputs, noise_scale)
    nll = -jnp.mean(logsumexp(comp, axis=0) - jnp.log(outputs.shape[0]))
    z = jnp.abs(y - mean) / jnp.sqrt(var)
    levels = jnp.asarray(LEVELS)
    half = norm.ppf(0.5 + levels / 2)
    coverage = jnp.mean(z.reshape(-1)[:, None] <= half[None], axis=0)
    return {
        "mse": jnp.mean((mean - y) ** 2),
        "nll": nll,
        "calibration_error": jnp.mean(jnp.abs(coverage - levels)),
        "coverage": coverage,
        "epistemic_variance": jnp.mean(epistemic),
    }


def classification_metrics(outputs: jax.Array, y: jax.Array) -> dict:
    """Accuracy, NLL and the confidence histogram of one classification task.

    Args:
        outputs: ``(S, N_q, C)`` logits draws.
        y: ``(N_q,)`` labels.

    Returns:
        ``{"accuracy", "nll", "confidence", "correct"}``; the last two per query
            point (for the pooled expected calibration error of :func:`summarize`).
    """
    logp = logsumexp(jax.nn.log_softmax(outputs), axis=0) - jnp.log(outputs.shape[0])
    pred = jnp.argmax(logp, axis=-1)
    correct = (pred == y).astype(jnp.float32)
    return {
        "accuracy": jnp.mean(correct),
        "nll": -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1)),
        "confidence": jnp.exp(jnp.max(logp, axis=-1)),
        "correct": correct,
    }


def _ece(confidence: np.ndarray, correct: np.ndarray, num_bins: int = 15) -> float:
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    gap = 0.0
    for b in range(num_bins):
        sel = bins == b
        if sel.any():
            gap += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(gap)


def summarize(per_task: dict[str, np.ndarray]) -> dict[str, Any]:
    """Mean and 95% half-width of each per-task metric (and the pooled ECE).

    ``coverage`` (tasks x levels) is averaged over tasks into a list.
    """
    out: dict[str, Any] = {}
    for name, values in per_task.items():
        values = np.asarray(values)
        if name == "coverage":
            out[name] = values.mean(axis=0).tolist()
        if values.ndim != 1:
            continue
        out[name] = float(values.mean())
        out[name + "_ci95"] = float(1.96 * values.std(ddof=1) / np.sqrt(values.size))
    if "confidence" in per_task:
        conf = np.asarray(per_task["confidence"]).ravel()
        out["ece"] = _ece(conf, np.asarray(per_task["correct"]).ravel())
    return out


@functools.lru_cache(maxsize=32)
def _scorer(learner: MetaLearner, task: str):
    """One compiled scorer per (learner, task), reused across calls of the same shapes."""

    @jax.jit
    def score(state, keys, ep, noise_scale):
        def one(key, xs, ys, xq, yq):
            outputs = learner.predict(key, state, xs, ys, xq)
            if task == "regression":
                return regression_metrics(outputs, yq, noise_scale)
            return classification_metrics(outputs, yq)

        return jax.vmap(one)(keys, *ep)

    return score


def evaluate(
    learner: MetaLearner,
    state: Any,
    episodes: Episode,
    *,
    rng_key: jax.Array,
    task: str,
    noise_scale: float | jax.Array = 0.0,
    batch: int = 100,
) -> dict[str, Any]:
    """Predict every test task from its support set and score its query set.

    Args:
        learner: The method.
        state: Its meta-trained state.
        episodes: ``B`` test tasks.
        rng_key: PRNG key for posterior draws.
        task: ``"regression"`` or ``"classification"``.
        noise_scale: Regression observation noise of the predictive.
        batch: Tasks per compiled ``vmap`` call (``B`` is padded up to a multiple).

    Returns:
        Summary of :func:`summarize` over the ``B`` tasks.
    """
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    check_episode(episodes)
    check_task(episodes.x_support[0], episodes.y_support[0], episodes.x_query[0])
    num = episodes.x_support.shape[0]
    batch = min(batch, num)
    score = _scorer(learner, task)
    keys = jax.random.split(rng_key, num)
    parts = []
    for start in range(0, num, batch):
        idx = np.arange(start, start + batch) % num
        ep = jax.tree.map(lambda a, i=idx: a[i], episodes)
        parts.append(jax.tree.map(np.asarray, score(state, keys[idx], ep, noise_scale)))
    merged = {k: np.concatenate([p[k] for p in parts])[:num] for k in parts[0]}
    return summarize(merged)
