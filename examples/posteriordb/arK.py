"""posteriordb ``arK-arK`` in NumPyro: an autoregressive model of order K.

Stan model::

    alpha ~ normal(0, 10);  beta ~ normal(0, 10);  sigma ~ cauchy(0, 2.5), sigma > 0;
    for (t in (K+1):T) y[t] ~ normal(alpha + sum_k beta[k] * y[t-k], sigma);

The loop is written as one vectorised likelihood over a matrix of lags.
"""

import numpy as np
import numpyro
import numpyro.distributions as dist

from bayes.posteriordb import load_data


def model(K, T, y):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    # lags[i, k] = y[t - 1 - k] for t = K + i (0-based), i.e. Stan's y[t-k]
    lags = y[np.arange(K, T)[:, None] - 1 - np.arange(K)[None, :]]
    with numpyro.plate("T", T - K):
        numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y[K:])


data = load_data("arK", keys=("K", "T", "y"))
