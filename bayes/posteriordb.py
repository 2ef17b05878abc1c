"""posteriordb reference posteriors: data, reference means and z-scores of a run.

The data live outside the repository (``shared/posteriordb`` next to it, or
``$BAYES_POSTERIORDB``); NumPyro versions of the Stan models are the files in
``examples/posteriordb/``, one per model, each defining ``model`` and
``data``.

A run agrees with the reference when every parameter's

.. math::

    z = \\frac{\\bar\\theta - \\theta_{\\mathrm{ref}}}
             {\\sqrt{\\mathrm{mcse}^2 + \\mathrm{mcse}_{\\mathrm{ref}}^2}}

has :math:`|z| < 4`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "POSTERIORS",
    "PosteriorDBError",
    "load_data",
    "load_model",
    "locate",
    "reference_means",
    "z_scores",
]

_ENV = "BAYES_POSTERIORDB"
_REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = _REPO / "examples" / "posteriordb"

#: posterior name -> model file stem in ``examples/posteriordb/``.
POSTERIORS: dict[str, str] = {
    "eight_schools-eight_schools_noncentered": "eight_schools_noncentered",
    "kidiq-kidscore_momiq": "kidscore_momiq",
    "earnings-logearn_height": "logearn_height",
    "arK-arK": "arK",
    "garch-garch11": "garch11",
    "gp_pois_regr-gp_regr": "gp_regr",
}


class PosteriorDBError(FileNotFoundError):
    """The posteriordb folder, or a file in it, is missing."""


def locate() -> Path:
    """The posteriordb folder: ``$BAYES_POSTERIORDB`` or ``shared/posteriordb`` beside the repo.

    Raises:
        PosteriorDBError: Neither exists.
    """
    override = os.environ.get(_ENV)
    candidates = [Path(override).expanduser()] if override else []
    candidates += [_REPO.parent / "shared" / "posteriordb", _REPO / "shared" / "posteriordb"]
    for path in candidates:
        if (path / "posteriors").is_dir():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise PosteriorDBError(
        f"posteriordb data not found (tried {tried}); set ${_ENV} to the folder holding "
        "posteriors/, data/ and mean_value/"
    )


def _read_json_zip(path: Path) -> Any:
    if not path.exists():
        raise PosteriorDBError(f"posteriordb file missing: {path}")
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(zf.namelist()[0]))


def load_data(name: str, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A data set as a dict of NumPy arrays (integers stay Python ints).

    Args:
        name: Data name (``"eight_schools"``) or posterior name (``"eight_schools-..."``).
        keys: Keep only these entries (the ones the model takes).

    Returns:
        Named values of the Stan data block.
    """
    data_name = name.split("-", 1)[0]
    raw = _read_json_zip(locate() / "data" / f"{data_name}.json.zip")
    out = {}
    for key, value in raw.items():
        if keys is not None and key not in keys:
            continue
        out[key] = value if isinstance(value, int) else np.asarray(value, dtype=float)
    return out


def reference_means(posterior: str) -> dict[str, tuple[float, float]]:
    """Reference posterior means and their MCSE, by Stan name (``"theta[1]"``, 1-based)."""
    path = locate() / "mean_value" / f"{posterior}.json"
    if not path.exists():
        raise PosteriorDBError(f"no reference means for {posterior!r} ({path} missing)")
    ref = json.loads(path.read_text())
    return {
        n: (float(m), float(s))
        for n, m, s in zip(ref["names"], ref["mean_value"], ref["mcse_mean"], strict=True)
    }


def load_model(posterior_or_file: str | os.PathLike[str]) -> ModuleType:
    """Import a model file (posterior name, model stem or path) defining ``model`` and ``data``."""
    key = str(posterior_or_file)
    stem = POSTERIORS.get(key, key)
    path = Path(key) if key.endswith(".py") else MODELS_DIR / f"{stem}.py"
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_posteriordb_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_STAN_NAME = re.compile(r"^(\w+)\[(\d+(?:,\d+)*)\]$")


def z_scores(idata: Any, posterior: str) -> dict[str, float]:
    """z-score of each reference parameter's posterior mean in a run.

    Args:
        idata: ``InferenceData`` whose posterior has the Stan variable names.
        posterior: Posterior name in posteriordb.

    Returns:
        Stan parameter name -> :math:`z` (see the module docstring).
    """
    import arviz as az

    out = {}
    for name, (ref, ref_mcse) in reference_means(posterior).items():
        match = _STAN_NAME.match(name)
        var, index = name, ()
        if match:
            var, index = match.group(1), tuple(int(i) - 1 for i in match.group(2).split(","))
        draws = np.asarray(idata.posterior[var], dtype=float)[(slice(None), slice(None), *index)]
        mcse = float(np.ravel(az.mcse(draws))[0])
        out[name] = (float(draws.mean()) - ref) / float(np.hypot(mcse, ref_mcse))
    return out
