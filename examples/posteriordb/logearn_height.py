"""posteriordb ``earnings-logearn_height`` in NumPyro (ARM, chapter 4).

Stan model (flat priors on ``beta`` and on ``sigma > 0``)::

    log_earn = log(earn);
    log_earn ~ normal(beta[1] + beta[2] * height, sigma);
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayes.posteriordb import load_data


def model(N, height, earn=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    log_earn = None if earn is None else jnp.log(earn)
    with numpyro.plate("N", N):
        numpyro.sample("log_earn", dist.Normal(beta[0] + beta[1] * height, sigma), obs=log_earn)


data = load_data("earnings", keys=("N", "height", "earn"))
