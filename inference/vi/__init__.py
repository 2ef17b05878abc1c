"""Programmable variational inference (pure JAX, after Becker, Lew et al., PLDI 2024).

Objectives are ordinary programs of ``(model, guide, params, *args, rng_key)``
written with a few constructs (:mod:`.constructs`); :func:`surrogate` turns
one into an unbiased gradient estimator with a per-site choice of estimator
(reparameterisation, score function with a baseline, exact enumeration).
"""

from .constructs import (
    ESTIMATORS,
    GuideDraw,
    guide_draw,
    log_mean_exp,
    model_log_density,
    normalized_weights,
    with_gradient_of,
)
from .guides import (
    GUIDE_KINDS,
    GaussianGuide,
    constrain_params,
    init_params,
    make_guide,
    unconstrain_params,
)
from .objectives import (
    cis_kernel,
    elbo,
    hierarchical_elbo,
    iwelbo,
    log_importance_weights,
    markov_score_climbing,
    mcmc_kernel,
    renyi,
    rws_wake_phi,
)
from .surrogate import (
    Baseline,
    StatefulObjective,
    Surrogate,
    expectation,
    learned_baseline,
    running_mean_baseline,
    surrogate,
)
from .train import VIAlgorithm, VIInfo, VIState, all_finite, build, nonfinite_sites, run_steps

__all__ = [
    "ESTIMATORS",
    "GUIDE_KINDS",
    "Baseline",
    "GaussianGuide",
    "GuideDraw",
    "StatefulObjective",
    "Surrogate",
    "VIAlgorithm",
    "VIInfo",
    "VIState",
    "all_finite",
    "build",
    "cis_kernel",
    "constrain_params",
    "elbo",
    "expectation",
    "guide_draw",
    "hierarchical_elbo",
    "init_params",
    "iwelbo",
    "learned_baseline",
    "log_importance_weights",
    "log_mean_exp",
    "make_guide",
    "markov_score_climbing",
    "mcmc_kernel",
    "model_log_density",
    "nonfinite_sites",
    "normalized_weights",
    "renyi",
    "run_steps",
    "running_mean_baseline",
    "rws_wake_phi",
    "surrogate",
    "unconstrain_params",
    "with_gradient_of",
]
