"""posteriordb ``garch-garch11`` in NumPyro: a GARCH(1, 1) volatility model.

Stan model (flat priors within the constraints)::

    mu;  alpha0 > 0;  0 < alpha1 < 1;  0 < beta1 < 1 - alpha1;
    sigma[1] = sigma1;
    sigma[t] = sqrt(alpha0 + alpha1 * (y[t-1] - mu)^2 + beta1 * sigma[t-1]^2);
    y ~ normal(mu, sigma);

``beta1``'s upper bound depends on ``alpha1``: an improper uniform on
``(0, 1 - alpha1)`` gives exactly Stan's transform and Jacobian.
"""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayes.posteriordb import load_data


def model(T, sigma1, y):
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), ()))
    alpha0 = numpyro.sample("alpha0", dist.ImproperUniform(constraints.positive, (), ()))
    alpha1 = numpyro.sample("alpha1", dist.ImproperUniform(constraints.unit_interval, (), ()))
    beta1 = numpyro.sample(
        "beta1", dist.ImproperUniform(constraints.interval(0.0, 1.0 - alpha1), (), ())
    )

    def step(sigma_prev, y_prev):
        sigma = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * sigma_prev**2)
        return sigma, sigma

    _, sigmas = jax.lax.scan(step, jnp.asarray(sigma1, dtype=y.dtype), y[:-1])
    sigma = jnp.concatenate([jnp.reshape(sigma1, (1,)).astype(y.dtype), sigmas])
    with numpyro.plate("T", T):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


data = load_data("garch", keys=("T", "sigma1", "y"))
