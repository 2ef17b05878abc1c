"""Bayesian-neural-network and infinite-width surrogates for BO (Li, Rudner & Wilson, ICLR 2024).

Pure JAX. The BO loop wraps these as BoTorch models in
:mod:`bayes.bo.jax_surrogates`; this package holds the networks and the
inference:

- :mod:`~bayes.models.bnn.mlp`: MLPs on a flat parameter vector with fan-in
  scaled Gaussian priors;
- :mod:`~bayes.models.bnn.inference`: weight posteriors by NUTS
  (:func:`bayes.sample`), mean-field VI (:mod:`bayes.inference.vi`) and deep
  ensembles (optax);
- :mod:`~bayes.models.bnn.gp`: exact GPs with the infinite-width (NNGP)
  kernel, deep kernel learning and the Student-t process;
- :mod:`~bayes.models.bnn.data`: padding to a few fixed sizes so BO rounds
  reuse compiled programs.
"""

from .data import PaddedData, bucket_size, pad_data, standardize
from .gp import (
    FAMILIES,
    GPFactor,
    GPPrediction,
    KernelConfig,
    factorize,
    fit_gp,
    init_hyperparameters,
    kernel,
    log_marginal_likelihood,
    predict_joint,
)
from .inference import (
    BNNPrior,
    WeightDraws,
    fit_meanfield,
    last_draws,
    logdensity_fn,
    predict,
    sample_nuts,
    train_ensemble,
)
from .mlp import ACTIVATIONS, MLPConfig, apply, init_params, num_params, prior_scales

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "BNNPrior",
    "GPFactor",
    "GPPrediction",
    "KernelConfig",
    "MLPConfig",
    "PaddedData",
    "WeightDraws",
    "apply",
    "bucket_size",
    "factorize",
    "fit_gp",
    "fit_meanfield",
    "init_hyperparameters",
    "init_params",
    "kernel",
    "last_draws",
    "log_marginal_likelihood",
    "logdensity_fn",
    "num_params",
    "pad_data",
    "predict",
    "predict_joint",
    "prior_scales",
    "sample_nuts",
    "standardize",
    "train_ensemble",
]
