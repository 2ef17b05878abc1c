"""Search spaces: named parameters mapped to and from the unit cube.

A :class:`Space` is an ordered list of parameters. Each parameter occupies one
coordinate of the unit cube :math:`[0, 1]^d` in which the surrogate and the
acquisition work (float64):

- :class:`Real` ``[low, high]``: :math:`u = (x - low) / (high - low)`, or on
  the log scale :math:`u = (\\log x - \\log low) / (\\log high - \\log low)`.
- :class:`Integer` ``{low, ..., high}``: the real relaxation of the range,
  rounded to the nearest integer when decoded.
- :class:`Categorical` ``(c_0, ..., c_{k-1})``: :math:`[0, 1]` cut into ``k``
  equal bins; bin ``j`` decodes to ``c_j``.

Decoding then re-encoding a point snaps it to the value that is actually
evaluated, so the surrogate sees what the objective saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Categorical", "Integer", "Real", "Space", "SpaceError"]


class SpaceError(ValueError):
    """An invalid search space or a point that does not belong to it."""


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpaceError(f"parameter name must be an identifier string, got {name!r}")


@dataclass(frozen=True)
class Real:
    """A continuous parameter in ``[low, high]``, optionally on a log scale."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        lo, hi = float(self.low), float(self.high)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise SpaceError(f"parameter {self.name!r}: bounds must be finite, got [{lo}, {hi}]")
        if not lo < hi:
            raise SpaceError(f"parameter {self.name!r}: empty range [{lo}, {hi}] (need low < high)")
        if self.log and lo <= 0:
            raise SpaceError(f"parameter {self.name!r}: a log scale needs low > 0, got {lo}")

    def encode(self, value: Any) -> float:
        x = float(value)
        if not self.low <= x <= self.high:
            raise SpaceError(f"{self.name}={x} is outside [{self.low}, {self.high}]")
        if self.log:
            return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (x - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return float(min(max(math.exp(lo + u * (hi - lo)), self.low), self.high))
        return float(self.low + u * (self.high - self.low))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "real", "name": self.name, "low": float(self.low),
                "high": float(self.high), "log": bool(self.log)}  # fmt: skip


@dataclass(frozen=True)
class Integer:
    """An integer parameter in ``{low, ..., high}``."""

    name: str
    low: int
    high: int

    def __post_init__(self) -> None:
        _check_name(self.name)
        if int(self.low) != self.low or int(self.high) != self.high:
            raise SpaceError(f"parameter {self.name!r}: integer bounds expected")
        if not self.low < self.high:
            raise SpaceError(
                f"parameter {self.name!r}: empty range {{{self.low}..{self.high}}} "
                "(need low < high)"
            )

    def encode(self, value: Any) -> float:
        if isinstance(value, bool) or int(value) != value:
            raise SpaceError(f"{self.name}={value!r} is not an integer")
        if not self.low <= int(value) <= self.high:
            raise SpaceError(f"{self.name}={value} is outside {{{self.low}..{self.high}}}")
        return (int(value) - self.low) / (self.high - self.low)

    def decode(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        return int(min(max(round(self.low + u * (self.high - self.low)), self.low), self.high))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "integer", "name": self.name, "low": int(self.low), "high": int(self.high)}


@dataclass(frozen=True)
class Categorical:
    """A categorical parameter taking one of ``choices`` (str, int, float or bool)."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        _check_name(self.name)
        choices = tuple(self.choices)
        object.__setattr__(self, "choices", choices)
        if len(choices) < 2:
            raise SpaceError(f"parameter {self.name!r}: a categorical needs at least 2 choices")
        if len(set(choices)) != len(choices):
            raise SpaceError(f"parameter {self.name!r}: duplicate choices in {list(choices)}")
        for c in choices:
            if not isinstance(c, str | int | float | bool):
                raise SpaceError(f"parameter {self.name!r}: choice {c!r} is not str/int/float/bool")

    def encode(self, value: Any) -> float:
        if value not in self.choices:
            raise SpaceError(f"{self.name}={value!r} is not one of {list(self.choices)}")
        return (self.choices.index(value) + 0.5) / len(self.choices)

    def decode(self, u: float) -> Any:
        k = len(self.choices)
        return self.choices[min(int(min(max(float(u), 0.0), 1.0) * k), k - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "name": self.name, "choices": list(self.choices)}


Parameter = Real | Integer | Categorical
_TYPES = {"real": Real, "integer": Integer, "categorical": Categorical}


def _parameter_from_dict(spec: Mapping[str, Any]) -> Parameter:
    if not isinstance(spec, Mapping):
        raise SpaceError(f"a parameter is described by a dict, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type", "real")
    if kind not in _TYPES:
        raise SpaceError(f"unknown parameter type {kind!r} (known: {', '.join(_TYPES)})")
    try:
        return _TYPES[kind](**spec)
    except TypeError as err:
        raise SpaceError(f"bad {kind} parameter {spec!r}: {err}") from None


class Space:
    """An ordered set of named parameters, mapped to the unit cube ``[0, 1]^d``.

    Args:
        parameters: :class:`Real`, :class:`Integer` or :class:`Categorical`
            instances, or dicts such as ``{"name": "lr", "type": "real",
            "low": 1e-4, "high": 1e-1, "log": True}``. A mapping ``{name:
            (low, high)}`` is also accepted: float bounds give :class:`Real`,
            int bounds :class:`Integer`, a list gives :class:`Categorical`.

    Raises:
        SpaceError: No parameters, a duplicate name, an unknown type or an
            empty range.
    """

    def __init__(self, parameters: Iterable[Parameter | Mapping[str, Any]] | Mapping[str, Any]):
        if isinstance(parameters, Mapping) and not {"type", "name"} & set(parameters):
            parameters = [_shorthand(k, v) for k, v in parameters.items()]
        params: list[Parameter] = []
        for p in parameters:
            is_param = isinstance(p, Real | Integer | Categorical)
            params.append(p if is_param else _parameter_from_dict(p))
        if not params:
            raise SpaceError("a search space needs at least one parameter")
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpaceError(f"duplicate parameter names: {', '.join(dup)}")
        self.parameters: tuple[Parameter, ...] = tuple(params)

    @property
    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.parameters]

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the unit cube."""
        return len(self.parameters)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """A parameter dict as a point of the unit cube, shape ``(d,)`` float64."""
        missing = [n for n in self.names if n not in params]
        extra = [n for n in params if n not in self.names]
        if missing or extra:
            raise SpaceError(f"point does not match the space: missing {missing}, unknown {extra}")
        return np.array([p.encode(params[p.name]) for p in self.parameters], dtype=np.float64)

    def decode(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """A unit-cube point of shape ``(d,)`` as a parameter dict."""
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        if u.shape != (self.dim,):
            raise SpaceError(f"expected a point with {self.dim} coordinates, got {u.shape[0]}")
        return {p.name: p.decode(x) for p, x in zip(self.parameters, u)}

    def snap(self, u: np.ndarray) -> np.ndarray:
        """Round unit-cube points ``(..., d)`` to what decoding evaluates."""
        u = np.asarray(u, dtype=np.float64)
        flat = u.reshape(-1, self.dim)
        out = np.stack([self.encode(self.decode(row)) for row in flat]) if len(flat) else flat
        return out.reshape(u.shape)

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-able description (inverse of ``Space(...)``)."""
        return [p.to_dict() for p in self.parameters]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"Space({self.to_list()!r})"


def _shorthand(name: str, value: Any) -> Parameter:
    if isinstance(value, list):
        return Categorical(name, tuple(value))
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = value
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return Integer(name, lo, hi)
        return Real(name, float(lo), float(hi))
    raise SpaceError(
        f"parameter {name!r}: use (low, high) for a range or a list of choices, got {value!r}"
    )
