r"""A variational autoencoder on scikit-learn's 8x8 digits (Kingma & Welling 2014).

Model (decoder :math:`f_\theta`, an MLP), for each image :math:`x_i \in \{0,1\}^{64}`:

.. math::
    z_i \sim N(0, I_L), \qquad x_{ij} \mid z_i \sim \mathrm{Bernoulli}(\sigma(f_\theta(z_i)_j)).

Guide (encoder :math:`g_\phi`): :math:`z_i \sim N(\mu_\phi(x_i),
\mathrm{diag}\,\sigma_\phi(x_i)^2)`. Both networks are ``numpyro.param`` pytrees, so one
objective program trains them jointly. :func:`per_image` turns a per-image
objective (ELBO, IWELBO) into one averaged over a random minibatch, which is
itself an unbiased estimate of the dataset average.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from bayes.inference import vi

__all__ = ["evaluate", "load_digits", "make_vae", "mlp", "per_image"]


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Binarised 8x8 digits (pixel > 8 of 16), shuffled and split.

    Returns:
        ``(train, test)`` of shapes ``(n_train, 64)`` and ``(n_test, 64)``, float32 in {0, 1}.
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as err:  # pragma: no cover - scikit-learn is in the test extra
        raise ImportError("the VAE example needs scikit-learn (pip install scikit-learn)") from err
    images = (_load().data > 8).astype(np.float32)
    order = np.random.default_rng(seed).permutation(images.shape[0])
    n_test = round(test_fraction * images.shape[0])
    return images[order[n_test:]], images[order[:n_test]]


def _init_mlp(rng_key: jax.Array, sizes: tuple[int, ...]) -> list[tuple[jax.Array, jax.Array]]:
    keys = jax.random.split(rng_key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (m, n)) / np.sqrt(m), jnp.zeros(n))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def mlp(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """Multilayer perceptron with tanh hidden units: ``x (..., in) -> (..., out)``."""
    for w, b in layers[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def make_vae(latent_dim: int = 4, hidden: int = 128) -> tuple[Callable, Callable]:
    """The VAE's NumPyro ``model(x)`` and amortised ``guide(x)`` for images ``x (N, 64)``.

    Args:
        latent_dim: ``L``, size of each image's latent code.
        hidden: Width of the single hidden layer of encoder and decoder.

    Returns:
        ``(model, guide)``; parameters ``decoder`` and ``encoder`` (lists of
            ``(W, b)`` layers).
    """

    def model(x):
        decoder = numpyro.param("decoder", partial(_init_mlp, sizes=(latent_dim, hidden, 64)))
        with numpyro.plate("images", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(latent_dim), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=mlp(decoder, z)).to_event(1), obs=x)

    def guide(x):
        encoder = numpyro.param("encoder", partial(_init_mlp, sizes=(64, hidden, 2 * latent_dim)))
        out = mlp(encoder, x)
        loc, scale = out[..., :latent_dim], jax.nn.softplus(out[..., latent_dim:]) + 1e-3
        with numpyro.plate("images", x.shape[0]):
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


def per_image(objective: Callable[..., jax.Array], batch_size: int) -> Callable[..., jax.Array]:
    """Average a per-image objective over a random minibatch of images.

    ``E_i[E_q[objective(x_i)]]`` over a uniformly drawn image ``i`` is the
    dataset average, so the minibatch mean is an unbiased estimate of it; each
    image's objective is its own ``expectation``, so K-particle bounds such as
    the IWELBO stay per image.

    Args:
        objective: Objective program for a single image ``x (1, 64)``.
        batch_size: Images per estimate.

    Returns:
        An objective program of ``(model, guide, params, x, *, rng_key)`` with
            ``x (N, 64)``, in nats per image.
    """
    one = vi.expectation(objective)

    def program(model, guide, params, x, *, rng_key):
        x = jnp.asarray(x)
        key_batch, key_draw = jax.random.split(rng_key)
        idx = jax.random.choice(key_batch, x.shape[0], (batch_size,), replace=False)
        keys = jax.random.split(key_draw, batch_size)
        values = jax.vmap(lambda i, k: one(model, guide, params, x[i][None], rng_key=k))(idx, keys)
        return jnp.mean(values)

    return program


def evaluate(
    model: Callable,
    guide: Callable,
    params: dict[str, Any],
    x: np.ndarray,
    *,
    rng_key: jax.Array,
    num_particles: int = 200,
) -> dict[str, float]:
    """Per-image test ELBO and importance-weighted bound (a log-likelihood estimate).

    Returns:
        ``{"elbo": ..., "iwelbo": ..., "num_particles": K}`` in nats per image.
    """
    keys = jax.random.split(rng_key, x.shape[0])
    elbo, iw = _evaluate(model, guide, num_particles, params, jnp.asarray(x), keys)
    return {"elbo": float(elbo.mean()), "iwelbo": float(iw.mean()), "num_particles": num_particles}


@partial(jax.jit, static_argnums=(0, 1, 2))
def _evaluate(model, guide, num_particles, params, x, keys):
    bound = vi.iwelbo(num_particles)

    def per(xi, key):
        k1, k2 = jax.random.split(key)
        xi = xi[None]
        elbo = vi.elbo(model, guide, params, xi, rng_key=k1)
        return elbo, bound(model, guide, params, xi, rng_key=k2)

    return jax.vmap(per)(x, keys)
