"""Durable, parallel Bayesian optimization on BoTorch (needs the ``bo`` extra).

Importing :mod:`bayes.bo` is light: torch and BoTorch load on first use of a
name that needs them.

Public names:
    Space, Real, Integer, Categorical: the search space (:mod:`bayes.bo.space`).
    Study, Trial: a study and its trials, kept in an SQLite store (:mod:`bayes.bo.study`).
    optimize: the parallel, resumable loop (:mod:`bayes.bo.loop`).
    Surrogate, register_surrogate, make_surrogate: the surrogate contract and registry.
    get_problem, PROBLEMS: built-in test problems with known optima.
    report: tables and plots of a study (:mod:`bayes.bo.report`).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Space": "bayes.bo.space",
    "Real": "bayes.bo.space",
    "Integer": "bayes.bo.space",
    "Categorical": "bayes.bo.space",
    "SpaceError": "bayes.bo.space",
    "Study": "bayes.bo.study",
    "StudyError": "bayes.bo.study",
    "Trial": "bayes.bo.store",
    "StoreError": "bayes.bo.store",
    "optimize": "bayes.bo.loop",
    "Surrogate": "bayes.bo.surrogates",
    "GPSurrogate": "bayes.bo.surrogates",
    "SAASSurrogate": "bayes.bo.surrogates",
    "register_surrogate": "bayes.bo.surrogates",
    "make_surrogate": "bayes.bo.surrogates",
    "available_surrogates": "bayes.bo.surrogates",
    "get_problem": "bayes.bo.problems",
    "PROBLEMS": "bayes.bo.problems",
    "report": "bayes.bo.report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'bayes.bo' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if name == "report" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
