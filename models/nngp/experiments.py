"""Experiments of the NNGP scale-mixture entry (registered in bayes.experiments).

The implementations live in :mod:`bayes.models.nngp.reproduce`, imported when an
experiment runs so that listing experiments stays free of JAX.
"""

from __future__ import annotations

from typing import Any

from bayes.experiments import RunContext, experiment


@experiment(
    "nngp-regression",
    "NNGP vs inverse-gamma (Student-t) vs Burr XII scale mixtures: test NLL and RMSE "
    "on Boston, concrete, diabetes and two synthetic sets",
)
def nngp_regression(ctx: RunContext) -> dict[str, Any]:
    from bayes.models.nngp.reproduce import regression_benchmark

    return regression_benchmark(ctx)


@experiment(
    "nngp-regression-small",
    "NNGP vs inverse-gamma vs Burr XII scale mixtures with 20 training points: paired "
    "per-seed test NLL gains over 10 seeds (quick: the two synthetic sets)",
)
def nngp_regression_small(ctx: RunContext) -> dict[str, Any]:
    from bayes.models.nngp.reproduce import small_n_regression

    return small_n_regression(ctx)


@experiment(
    "nngp-ood",
    "digits: NNGP vs Student-t process (one-hot regression and sparse variational softmax) "
    "accuracy, NLL and ECE on clean and noise-corrupted digits, entropy on a held-out class",
)
def nngp_ood(ctx: RunContext) -> dict[str, Any]:
    from bayes.models.nngp.ood import ood_classification

    return ood_classification(ctx)


@experiment(
    "nngp-wide-nets",
    "finite wide ReLU networks with a posterior last-layer scale, readout trained by gradient "
    "descent: ensemble predictive vs the Student-t process (KS distance, plot)",
)
def nngp_wide_nets(ctx: RunContext) -> dict[str, Any]:
    from bayes.models.nngp.reproduce import wide_network_ensemble

    return wide_network_ensemble(ctx)


@experiment(
    "nngp-hmc",
    "NUTS over the NNGP hyperparameters (scale integrated) vs type-II ML: paired per-test-point "
    "NLL and MSE differences on Boston, concrete, diabetes and the heavy-tailed set, n = 20, 100",
)
def nngp_hmc(ctx: RunContext) -> dict[str, Any]:
    from bayes.models.nngp.hmc_study import hmc_type2_experiment

    return hmc_type2_experiment(ctx)
