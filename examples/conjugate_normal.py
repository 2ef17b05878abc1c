"""Fit a conjugate Normal model with NUTS and compare with the exact posterior.

Usage:
    python examples/conjugate_normal.py [--quick] [--n 100] [--seed 0]

Every script in examples/ accepts ``--quick`` (its smallest size); the test
suite runs them all that way.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest size")
    parser.add_argument("--n", type=int, default=100, help="number of observations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import arviz as az
    import jax
    from bayes.models.conjugate import exact_posterior, model, simulate
    from numpyro.infer import MCMC, NUTS

    draws = 300 if args.quick else 2000
    y = simulate(args.n, seed=args.seed)
    mcmc = MCMC(NUTS(model), num_warmup=draws, num_samples=draws, num_chains=2,
                chain_method="vectorized", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.key(args.seed), y=y)
    print(az.summary(az.from_numpyro(mcmc), var_names=["mu"]))
    mean, sd = exact_posterior(y)
    print(f"exact posterior: mean={mean:.4f} sd={sd:.4f}")


if __name__ == "__main__":
    main()
