"""posteriordb ``eight_schools-eight_schools_noncentered`` in NumPyro.

Stan model (non-centred eight schools)::

    theta_trans ~ normal(0, 1);  theta = theta_trans * tau + mu;
    mu ~ normal(0, 5);  tau ~ cauchy(0, 5) with tau > 0;
    y ~ normal(theta, sigma);

Sample it with ``bayes sample examples/posteriordb/eight_schools_noncentered.py``.
"""

import numpyro
import numpyro.distributions as dist

from bayes.posteriordb import load_data


def model(J, sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", J):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", theta_trans * tau + mu)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


data = load_data("eight_schools", keys=("J", "sigma", "y"))
