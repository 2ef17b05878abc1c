"""State-space models and the PaRIS particle Gibbs zoo entry.

Cardoso, Janati El Idrissi, Le Corff, Moulines & Olsson, "State and parameter
learning with PaRIS particle Gibbs", ICML 2023. The entry holds:

- :mod:`~bayes.models.ssm.lgssm`: the linear Gaussian model with exact Kalman
  filtering, smoothing, path sampling and score (the ground truth);
- :mod:`~bayes.models.ssm.nonlinear`: stochastic volatility and the nonlinear
  growth model;
- experiments ``paris-bias``, ``paris-mle``, ``paris-msc`` and ``smc-evidence``.
"""

from bayes.models.ssm.lgssm import (
    KalmanOutput,
    SmootherOutput,
    exact_score,
    expected_complete_loglik,
    kalman_filter,
    kalman_loglik,
    linear_gaussian_ssm,
    optimal_proposal,
    predictive_logweight,
    rts_smoother,
    sample_posterior_paths,
    scalar_matrices,
    scalar_phi,
    scalar_theta,
    simulate,
)
from bayes.models.ssm.nonlinear import growth_model, simulate_ssm, stochastic_volatility

__all__ = [
    "KalmanOutput",
    "SmootherOutput",
    "exact_score",
    "expected_complete_loglik",
    "growth_model",
    "kalman_filter",
    "kalman_loglik",
    "linear_gaussian_ssm",
    "optimal_proposal",
    "predictive_logweight",
    "rts_smoother",
    "sample_posterior_paths",
    "scalar_matrices",
    "scalar_phi",
    "scalar_theta",
    "simulate",
    "simulate_ssm",
    "stochastic_volatility",
]
