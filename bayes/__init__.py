"""bayes: probabilistic programming and Bayesian inference in JAX.

The public API is loaded lazily: ``import bayes`` imports neither JAX nor
PyTorch; the heavy modules load on first attribute access.

Public names:
    sample: run MCMC/SMC/VI on a NumPyro model or a JAX log-density and
        return ``arviz.InferenceData`` (``bayes.sampling``).
    diagnostics: convergence diagnostics and simulation-based calibration.
    bo: the durable Bayesian-optimization loop (needs the ``bo`` extra).
    experiments: the registry of reproducible experiments.
    inference: the pure-JAX inference layer (``mcmc``, ``smc``, ``vi``).
    models: the model zoo.
"""

from __future__ import annotations

import importlib
from typing import Any

from bayes import _xla

__version__ = "0.1.0"

# before JAX's first computation reads XLA_FLAGS (see bayes._xla)
_xla.apply()

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "sample": ("bayes.sampling", "sample"),
    "clear_cache": ("bayes.sampling", "clear_cache"),
    "diagnostics": ("bayes.diagnostics", None),
    "bo": ("bayes.bo", None),
    "bridge": ("bayes.bridge", None),
    "config": ("bayes.config", None),
    "experiments": ("bayes.experiments", None),
    "inference": ("bayes.inference", None),
    "models": ("bayes.models", None),
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'bayes' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
