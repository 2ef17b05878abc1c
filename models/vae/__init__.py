"""Variational autoencoder on scikit-learn's 8x8 digits, trained with programmable VI.

See :mod:`bayes.models.vae.vae`; the experiment ``vi-vae`` compares ELBO and
IWELBO training (Burda et al. 2016).
"""

from .vae import evaluate, load_digits, make_vae, mlp, per_image

__all__ = ["evaluate", "load_digits", "make_vae", "mlp", "per_image"]
