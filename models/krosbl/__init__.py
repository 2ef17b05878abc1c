"""Kronecker-structured sparse Bayesian learning (He & Joseph, IEEE TSP 2024).

Recovers ``x`` from ``y = (A_1 kron ... kron A_I) x + n`` when the support of
``x`` is a Kronecker product of mode supports, by EM for sparse Bayesian
learning with a Kronecker-structured prior variance
``gamma = gamma_1 kron ... kron gamma_I``:

- :func:`fit` / :func:`fit_batch`: SVD-KroSBL, AM-KroSBL, PC-KroSBL (block
  sparsity), classic SBL and Kronecker OMP, jit-compiled in float64.
- :func:`kron_estep`: the E-step without forming the dictionary or any
  ``N x N`` matrix.
- :func:`simulate_problem` and :func:`simulate_irs`: synthetic problems and
  the IRS-aided MIMO uplink channel-estimation model.
"""

from __future__ import annotations

from .api import ALL_METHODS, FitResult, compile_fit_batch, fit, fit_batch
from .data import Problem, add_noise, nmse, simulate_problem
from .irs import (
    IRSConfig,
    IRSProblem,
    cascaded_channel_nmse,
    cascaded_channels,
    irs_physical_measurements,
    simulate_irs,
    symbol_error_rate,
)
from .komp import KOMPOutput, run_komp
from .kron import EStep, dense_estep, kron_dense, kron_estep, kron_matvec, kron_vector, mode_product
from .sbl import METHODS, SBLConfig, SBLOutput, run_sbl

__all__ = [
    "ALL_METHODS",
    "METHODS",
    "EStep",
    "FitResult",
    "IRSConfig",
    "IRSProblem",
    "KOMPOutput",
    "Problem",
    "SBLConfig",
    "SBLOutput",
    "add_noise",
    "cascaded_channel_nmse",
    "cascaded_channels",
    "compile_fit_batch",
    "dense_estep",
    "fit",
    "fit_batch",
    "irs_physical_measurements",
    "kron_dense",
    "kron_estep",
    "kron_matvec",
    "kron_vector",
    "mode_product",
    "nmse",
    "run_komp",
    "run_sbl",
    "simulate_irs",
    "simulate_problem",
    "symbol_error_rate",
]
