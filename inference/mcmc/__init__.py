"""mcmc inference algorithms (pure JAX)."""
