"""vi inference algorithms (pure JAX)."""
