"""Few-shot task distributions shared by every method of the entry.

All samplers are pure JAX functions of ``rng_key`` (so meta-training can run
inside ``jax.lax.scan``) and return an :class:`Episode` batch.

- :func:`sample_sinusoid`: ``y = A sin(x - phi)`` with ``A ~ U[0.1, 5]``,
  ``phi ~ U[0, pi]``, ``x ~ U[-5, 5]`` (Finn et al., 2017).
- :func:`sample_sine_or_line`: half of the tasks are lines ``y = a x + b``
  with ``a, b ~ U[-3, 3]`` (Finn et al., 2018).
- :func:`digits_classes` / :func:`sample_classification`: N-way K-shot tasks
  over scikit-learn's 8x8 digits. Each image is rotated by 0, 90, 180 and 270
  degrees and every (digit, rotation) pair is a class: 40 classes of 174
  images. Meta-train classes are all rotations of digits 0-6 (28 classes);
  meta-test classes are all rotations of digits 7, 8 and 9 (12 classes), so no
  test digit is seen during meta-training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "DIGITS_TEST_DIGITS",
    "DIGITS_TRAIN_DIGITS",
    "Episode",
    "check_episode",
    "check_task",
    "digits_classes",
    "sample_classification",
    "sample_sine_or_line",
    "sample_sinusoid",
]

DIGITS_TRAIN_DIGITS = (0, 1, 2, 3, 4, 5, 6)
DIGITS_TEST_DIGITS = (7, 8, 9)
_PER_CLASS = 174  # the rarest digit (8) has 174 images


class Episode(NamedTuple):
    """A batch of ``B`` few-shot tasks.

    Attributes:
        x_support: ``(B, N_s, in_dim)`` support inputs.
        y_support: ``(B, N_s, 1)`` regression targets or ``(B, N_s)`` int labels.
        x_query: ``(B, N_q, in_dim)`` query inputs.
        y_query: ``(B, N_q, 1)`` or ``(B, N_q)``.
    """

    x_support: jax.Array
    y_support: jax.Array
    x_query: jax.Array
    y_query: jax.Array


def check_episode(episode: Episode, *, batched: bool = True) -> None:
    """Raise ``ValueError`` naming the problem if ``episode`` is malformed.

    Args:
        episode: Task batch (``batched=True``) or a single task (leading axis dropped).
        batched: Whether the arrays carry the task axis ``B``.
    """
    lead = 1 if batched else 0
    names = ("x_support", "y_support", "x_query", "y_query")
    shapes = [tuple(np.shape(a)) for a in episode]
    for name, shape in zip(names, shapes):
        if len(shape) < lead + 1:
            raise ValueError(f"{name} has shape {shape}; expected a task axis and a point axis")
    for x_name, y_name, xs, ys in (
        (names[0], names[1], *shapes[:2]),
        (names[2], names[3], *shapes[2:]),
    ):
        if xs[lead] == 0 and x_name == "x_support":
            raise ValueError(f"empty support set: x_support has no points (shape {xs})")
        if xs[: lead + 1] != ys[: lead + 1]:
            raise ValueError(f"mismatched shapes: {x_name} {xs} vs {y_name} {ys}")
    if shapes[0][lead + 1 :] != shapes[2][lead + 1 :]:
        raise ValueError(f"mismatched input dims: x_support {shapes[0]} vs x_query {shapes[2]}")
    if lead and shapes[0][0] != shapes[2][0]:
        raise ValueError(
            f"support and query hold different numbers of tasks: {shapes[0]} vs {shapes[2]}"
        )


def check_task(x_support: ArrayLike, y_support: ArrayLike, x_query: ArrayLike) -> None:
    """Raise ``ValueError`` naming the problem if one test task is malformed.

    Args:
        x_support: ``(N_s, in_dim)``, ``N_s >= 1``.
        y_support: ``(N_s, out_dim)`` or ``(N_s,)``.
        x_query: ``(N_q, in_dim)``.
    """
    xs, ys, xq = (tuple(np.shape(a)) for a in (x_support, y_support, x_query))
    if len(xs) != 2 or len(xq) != 2:
        raise ValueError(f"inputs must be 2-D (points, in_dim): x_support {xs}, x_query {xq}")
    if xs[0] == 0:
        raise ValueError(f"empty support set: x_support has shape {xs}")
    if ys[:1] != xs[:1]:
        raise ValueError(f"mismatched shapes: x_support {xs} vs y_support {ys}")
    if xs[1] != xq[1]:
        raise ValueError(f"mismatched input dims: x_support {xs} vs x_query {xq}")


def _regression_points(rng_key: jax.Array, fn, num_support: int, num_query: int):
    x = jax.random.uniform(rng_key, (num_support + num_query, 1), minval=-5.0, maxval=5.0)
    y = fn(x)
    return x[:num_support], y[:num_support], x[num_support:], y[num_support:]


def _sinusoid_task(rng_key, num_support, num_query):
    k_a, k_p, k_x = jax.random.split(rng_key, 3)
    amp = jax.random.uniform(k_a, (), minval=0.1, maxval=5.0)
    phase = jax.random.uniform(k_p, (), minval=0.0, maxval=jnp.pi)
    return _regression_points(k_x, lambda x: amp * jnp.sin(x - phase), num_support, num_query)


def _line_task(rng_key, num_support, num_query):
    k_a, k_b, k_x = jax.random.split(rng_key, 3)
    slope = jax.random.uniform(k_a, (), minval=-3.0, maxval=3.0)
    icept = jax.random.uniform(k_b, (), minval=-3.0, maxval=3.0)
    return _regression_points(k_x, lambda x: slope * x + icept, num_support, num_query)


def sample_sinusoid(
    *, rng_key: jax.Array, num_tasks: int, num_support: int, num_query: int
) -> Episode:
    """``num_tasks`` sinusoid regression tasks (inputs and targets of shape ``(., ., 1)``)."""
    keys = jax.random.split(rng_key, num_tasks)
    return Episode(*jax.vmap(lambda k: _sinusoid_task(k, num_support, num_query))(keys))


def sample_sine_or_line(
    *, rng_key: jax.Array, num_tasks: int, num_support: int, num_query: int
) -> Episode:
    """Tasks that are sinusoids or lines with probability one half each."""

    def one(key):
        k_c, k_t = jax.random.split(key)
        sine = _sinusoid_task(k_t, num_support, num_query)
        line = _line_task(k_t, num_support, num_query)
        pick = jax.random.bernoulli(k_c)
        return tuple(jnp.where(pick, s, l) for s, l in zip(sine, line))

    return Episode(*jax.vmap(one)(jax.random.split(rng_key, num_tasks)))


def digits_classes(split: str) -> np.ndarray:
    """Images of the 8x8-digit classes of one split.

    Args:
        split: ``"train"`` (digits 0-6) or ``"test"`` (digits 7-9).

    Returns:
        ``(num_classes, 174, 64)`` float32 array in ``[0, 1]``; class ``4 d + r``
            holds digit ``d`` rotated by ``90 r`` degrees (in order within the split).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn ships with the test extra
        raise ImportError("the digits tasks need scikit-learn: pip install scikit-learn") from err
    data = load_digits()
    images = data.images.astype(np.float32) / 16.0
    digits = DIGITS_TRAIN_DIGITS if split == "train" else DIGITS_TEST_DIGITS
    classes = []
    for digit in digits:
        imgs = images[data.target == digit][:_PER_CLASS]
        for quarter in range(4):
            classes.append(np.rot90(imgs, k=quarter, axes=(1, 2)).reshape(_PER_CLASS, 64))
    return np.stack(classes)


def sample_classification(
    classes: jax.Array,
    *,
    rng_key: jax.Array,
    num_tasks: int,
    num_ways: int,
    num_shots: int,
    num_query: int,
) -> Episode:
    """N-way K-shot tasks drawn from ``classes``.

    Args:
        classes: ``(C, M, in_dim)`` images per class (see :func:`digits_classes`).
        rng_key: PRNG key.
        num_tasks: Number of tasks ``B``.
        num_ways: Classes per task ``N`` (labels ``0..N-1`` in a random order).
        num_shots: Support images per class ``K``.
        num_query: Query images per class.

    Returns:
        Episode with ``x_support`` ``(B, N K, in_dim)`` and int labels ``(B, N K)``.
    """
    num_classes, per_class, _ = classes.shape
    if num_ways > num_classes or num_shots + num_query > per_class:
        raise ValueError(
            f"cannot draw {num_ways}-way {num_shots}+{num_query}-shot tasks from "
            f"{num_classes} classes of {per_class} images"
        )

    def one(key):
        k_c, k_i = jax.random.split(key)
        chosen = jax.random.choice(k_c, num_classes, (num_ways,), replace=False)
        idx = jax.vmap(
            lambda k: jax.random.choice(k, per_class, (num_shots + num_query,), replace=False)
        )(jax.random.split(k_i, num_ways))
        imgs = classes[chosen[:, None], idx]  # (N, K + Q, in_dim)
        labels = jnp.broadcast_to(jnp.arange(num_ways)[:, None], idx.shape)
        xs, xq = imgs[:, :num_shots], imgs[:, num_shots:]
        ys, yq = labels[:, :num_shots], labels[:, num_shots:]
        flat = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731
        return flat(xs), flat(ys), flat(xq), flat(yq)

    return Episode(*jax.vmap(one)(jax.random.split(rng_key, num_tasks)))
