"""Build ``arviz.InferenceData`` from draws, shared by the MCMC, SMC and VI front ends.

All arrays follow ArviZ's layout: a leading ``(chain, draw)`` pair of axes,
then the variable's own shape. Variable dimensions are named
``<var>_dim_<i>``, ArviZ's default, so array-valued sites index from 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["run_attrs", "to_inference_data"]


def _numpy(tree: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    return {str(k): np.asarray(v) for k, v in (tree or {}).items()}


def run_attrs(
    method: str, settings: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Attributes recorded with a run: method, settings (JSON), package versions, extras.

    NetCDF attributes must be strings or numbers, so settings and versions are
    stored as JSON strings; ``extra`` values are stored as given (numbers,
    strings) or as JSON.

    Args:
        method: Name of the inference method.
        settings: Its settings (JSON-able values).
        **extra: Further attributes such as timings ``compile_s``, ``warmup_s``,
            ``sampling_s``.

    Returns:
        The attribute dict.
    """
    from bayes.experiments import package_versions, to_jsonable

    attrs: dict[str, Any] = {
        "inference_library": "bayes",
        "method": method,
        "settings": json.dumps(to_jsonable(dict(settings or {})), sort_keys=True),
        "versions": json.dumps(package_versions(), sort_keys=True),
    }
    for key, value in extra.items():
        if isinstance(value, bool):
            attrs[key] = int(value)
        elif isinstance(value, int | float | str):
            attrs[key] = value
        elif value is not None:
            attrs[key] = json.dumps(to_jsonable(value))
    return attrs


def to_inference_data(
    posterior: Mapping[str, Any],
    *,
    sample_stats: Mapping[str, Any] | None = None,
    log_likelihood: Mapping[str, Any] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Any:
    """Assemble an ``arviz.InferenceData``.

    Args:
        posterior: Constrained draws by name, each of shape ``(num_chains, num_draws, ...)``.
        sample_stats: Per-draw statistics (``diverging``, ``energy``, ``lp``, ...),
            shape ``(num_chains, num_draws)``.
        log_likelihood: Pointwise log-likelihood by observed site, shape
            ``(num_chains, num_draws, *observation_shape)``, so ``az.loo`` works.
        observed_data: Observed values by site name.
        attrs: Attributes set on every group (see :func:`run_attrs`).

    Returns:
        The ``InferenceData``.
    """
    import arviz as az

    groups = {
        "posterior": _numpy(posterior),
        "sample_stats": _numpy(sample_stats) or None,
        "log_likelihood": _numpy(log_likelihood) or None,
        "observed_data": _numpy(observed_data) or None,
    }
    idata = az.from_dict(**{k: v for k, v in groups.items() if v is not None})
    for name in idata.groups():
        idata[name].attrs.update(dict(attrs or {}))
    return idata
