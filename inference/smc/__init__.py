"""smc inference algorithms (pure JAX)."""
