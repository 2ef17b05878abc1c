"""posteriordb ``gp_pois_regr-gp_regr`` in NumPyro: Gaussian-process regression.

Stan model::

    cov = gp_exp_quad_cov(x, alpha, rho) + diag_matrix(rep_vector(sigma, N));
    rho ~ gamma(25, 4);  alpha ~ normal(0, 2), alpha > 0;  sigma ~ normal(0, 1), sigma > 0;
    y ~ multi_normal_cholesky(0, cholesky_decompose(cov));
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes.posteriordb import load_data


def model(N, x, y=None):
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    sq_dist = (x[:, None] - x[None, :]) ** 2
    cov = alpha**2 * jnp.exp(-0.5 * sq_dist / rho**2) + sigma * jnp.eye(N)
    scale_tril = jnp.linalg.cholesky(cov)
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(N), scale_tril=scale_tril), obs=y)


data = load_data("gp_pois_regr", keys=("N", "x", "y"))
