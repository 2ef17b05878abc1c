"""Experiments of the conjugate Normal entry (registered in bayes.experiments)."""

from __future__ import annotations

from typing import Any

from bayes.experiments import RunContext, experiment


@experiment(
    "conjugate-normal",
    "NUTS on a conjugate Normal model: error of posterior mean and sd vs the exact posterior",
)
def conjugate_normal(ctx: RunContext) -> dict[str, Any]:
    import arviz as az
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from bayes.models.conjugate import exact_posterior, model, simulate
    from numpyro.infer import MCMC, NUTS
    from scipy import stats

    n_obs = 50
    num_warmup, num_samples, num_chains = (300, 500, 2) if ctx.quick else (1000, 2000, 4)
    y = simulate(n_obs, seed=ctx.seed)
    mean, sd = exact_posterior(y)

    ctx.log(f"NUTS: {num_chains} chains x ({num_warmup} warmup + {num_samples} draws)")
    mcmc = MCMC(
        NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=ctx.progress,
    )
    mcmc.run(jax.random.key(ctx.seed), y=y)
    idata = az.from_numpyro(mcmc)
    summary = az.summary(idata, var_names=["mu"], round_to="none")
    draws = np.asarray(idata.posterior["mu"]).ravel()
    mcse_mean = float(summary.loc["mu", "mcse_mean"])
    mcse_sd = float(summary.loc["mu", "mcse_sd"])

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(draws, bins=50, density=True, alpha=0.5, label="NUTS draws")
    grid = np.linspace(draws.min(), draws.max(), 200)
    ax.plot(grid, stats.norm.pdf(grid, mean, sd), "k-", label="exact posterior")
    ax.set_xlabel("mu")
    ax.set_ylabel("density")
    ax.legend()
    ctx.savefig(fig, "posterior")

    return {
        "exact_mean": mean,
        "exact_sd": sd,
        "sample_mean": float(draws.mean()),
        "sample_sd": float(draws.std(ddof=1)),
        "mean_error_in_mcse": (float(draws.mean()) - mean) / mcse_mean,
        "sd_error_in_mcse": (float(draws.std(ddof=1)) - sd) / mcse_sd,
        "ess_bulk": float(summary.loc["mu", "ess_bulk"]),
        "r_hat": float(summary.loc["mu", "r_hat"]),
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
    }
