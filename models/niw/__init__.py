"""Hierarchical Normal-Inverse-Wishart few-shot meta-learning (Kim & Hospedales, 2023).

Each episode's network weights are ``theta_i ~ N(mu, Sigma)`` under a global
``(mu, Sigma) ~ NIW``; the local posterior has an approximately closed form, so
every episode is a one-time iterate of the optimization and no inner-loop
graph is kept. MAML (second and first order), Reptile and ProtoNet baselines
share the networks, task samplers and metrics, so the comparison is one run.

See ``docs/zoo/niw.md`` for the model, the algorithm and the reproduced results.
"""

from __future__ import annotations

from .baselines import PointState, maml, protonet, reptile
from .common import Likelihood, MetaLearner, categorical_likelihood, gaussian_likelihood, inner_sgd
from .data import (
    DIGITS_TEST_DIGITS,
    DIGITS_TRAIN_DIGITS,
    Episode,
    check_episode,
    check_task,
    digits_classes,
    sample_classification,
    sample_sine_or_line,
    sample_sinusoid,
)
from .distribution import NIW, expected_log_det, expected_precision, niw_kl, niw_mode
from .nets import Network, mlp
from .niw import (
    GlobalParams,
    LocalQuadratic,
    NIWInfo,
    NIWState,
    global_niw,
    local_posterior,
    local_quadratic,
    niw_meta_learner,
)
from .train import (
    LEVELS,
    classification_metrics,
    evaluate,
    meta_train,
    regression_metrics,
    summarize,
)

__all__ = [
    "DIGITS_TEST_DIGITS",
    "DIGITS_TRAIN_DIGITS",
    "LEVELS",
    "NIW",
    "Episode",
    "GlobalParams",
    "Likelihood",
    "LocalQuadratic",
    "MetaLearner",
    "NIWInfo",
    "NIWState",
    "Network",
    "PointState",
    "categorical_likelihood",
    "check_episode",
    "check_task",
    "classification_metrics",
    "digits_classes",
    "evaluate",
    "expected_log_det",
    "expected_precision",
    "gaussian_likelihood",
    "global_niw",
    "inner_sgd",
    "local_posterior",
    "local_quadratic",
    "maml",
    "meta_train",
    "mlp",
    "niw_kl",
    "niw_meta_learner",
    "niw_mode",
    "protonet",
    "regression_metrics",
    "reptile",
    "sample_classification",
    "sample_sine_or_line",
    "sample_sinusoid",
    "summarize",
]
