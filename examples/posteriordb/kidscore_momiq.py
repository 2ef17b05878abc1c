"""posteriordb ``kidiq-kidscore_momiq`` in NumPyro (ARM, chapter 3).

Stan model (``beta`` has a flat prior)::

    sigma ~ cauchy(0, 2.5) with sigma > 0;
    kid_score ~ normal(beta[1] + beta[2] * mom_iq, sigma);
"""

import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayes.posteriordb import load_data


def model(N, mom_iq, kid_score=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("N", N):
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)


data = load_data("kidiq", keys=("N", "mom_iq", "kid_score"))
