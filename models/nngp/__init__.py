"""Scale mixtures of neural-network Gaussian processes (Lee, Yun, Yang and Lee, ICLR 2022).

An infinitely wide fully connected network is a Gaussian process with the
NNGP kernel (:mod:`~bayes.models.nngp.kernels`). Putting a prior on the
variance ``s`` of its last layer turns it into a scale mixture of Gaussian
processes: an inverse-gamma prior gives a Student-t process in closed form
(:mod:`~bayes.models.nngp.gp`), any other prior (Burr XII, half-Cauchy,
log-normal, a user density) is integrated over the one-dimensional scale by
quadrature or importance sampling (:mod:`~bayes.models.nngp.scale_mixture`).
Hyperparameters are fitted by maximizing the marginal likelihood with optax
(:mod:`~bayes.models.nngp.regression`), or sampled with NUTS through
``bayes.sample`` (:mod:`~bayes.models.nngp.hmc`). A sparse variational Student-t
process with a softmax likelihood is fitted through the VI layer
(:mod:`~bayes.models.nngp.svtp`).

All public functions are pure JAX; call them inside ``jax.enable_x64(True)``
for float64.
"""

from .gp import (
    GPFit,
    StudentTPredictive,
    gaussian_log_marginal_likelihood,
    gaussian_log_predictive,
    gaussian_predict,
    gp_fit,
    inverse_gamma_posterior,
    student_t_log_marginal_likelihood,
    student_t_log_predictive,
    student_t_predict,
    validate_targets,
)
from .hmc import (
    HYPERPARAMETERS,
    HMCPredictive,
    hmc_predict,
    hyperparameter_logdensity,
    sample_hyperparameters,
)
from .hmc_study import compare_hmc_type2, summarize_pairs
from .kernels import (
    ACTIVATIONS,
    KernelParams,
    kernel_diag,
    kernel_matrix,
    nngp_kernel,
    ntk_kernel,
    validate_inputs,
)
from .regression import (
    FAMILIES,
    Predictive,
    constrain,
    fit_hyperparameters,
    init_params,
    log_marginal_likelihood,
    predict,
)
from .scale_mixture import (
    BurrXII,
    LowEffectiveSampleSizeWarning,
    ScalePosterior,
    half_cauchy_on_std,
    mixture_log_predictive,
    mixture_predictive_variance,
    scale_log_likelihood,
    scale_log_marginal_likelihood,
    scale_posterior_importance,
    scale_posterior_quadrature,
)
from .svtp import (
    SVTP,
    SVTPFit,
    svtp,
    svtp_class_probabilities,
    svtp_latent_predict,
)
from .svtp_train import svtp_fit, svtp_objective

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "HYPERPARAMETERS",
    "SVTP",
    "BurrXII",
    "GPFit",
    "HMCPredictive",
    "KernelParams",
    "LowEffectiveSampleSizeWarning",
    "Predictive",
    "SVTPFit",
    "ScalePosterior",
    "StudentTPredictive",
    "compare_hmc_type2",
    "constrain",
    "fit_hyperparameters",
    "gaussian_log_marginal_likelihood",
    "gaussian_log_predictive",
    "gaussian_predict",
    "gp_fit",
    "half_cauchy_on_std",
    "hmc_predict",
    "hyperparameter_logdensity",
    "init_params",
    "inverse_gamma_posterior",
    "kernel_diag",
    "kernel_matrix",
    "log_marginal_likelihood",
    "mixture_log_predictive",
    "mixture_predictive_variance",
    "nngp_kernel",
    "ntk_kernel",
    "predict",
    "sample_hyperparameters",
    "scale_log_likelihood",
    "scale_log_marginal_likelihood",
    "scale_posterior_importance",
    "scale_posterior_quadrature",
    "student_t_log_marginal_likelihood",
    "student_t_log_predictive",
    "student_t_predict",
    "summarize_pairs",
    "svtp",
    "svtp_class_probabilities",
    "svtp_fit",
    "svtp_latent_predict",
    "svtp_objective",
    "validate_inputs",
    "validate_targets",
]
