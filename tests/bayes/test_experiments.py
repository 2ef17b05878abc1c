"""The experiments registry in-process: registration, results.json, JSON conversion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bayes import experiments as ex


def test_register_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "_REGISTRY", dict(ex.registry()))

    @ex.experiment("test-echo", "echo the seed")
    def echo(ctx: ex.RunContext) -> dict:
        seen = list(ctx.track(range(3), total=3))
        return {"seed": ctx.seed, "quick": ctx.quick, "seen": seen, "arr": np.arange(2)}

    record = ex.run_experiment("test-echo", quick=True, seed=7, out=tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == record
    assert record["results"] == {"seed": 7, "quick": True, "seen": [0, 1, 2], "arr": [0, 1]}


def test_duplicate_name_from_other_module_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "_REGISTRY", dict(ex.registry()))
    fake = lambda ctx: {}  # noqa: E731
    fake.__module__ = "somewhere.else"
    with pytest.raises(ValueError, match="already registered"):
        ex.experiment("conjugate-normal", "dup")(fake)


def test_unknown_experiment() -> None:
    with pytest.raises(ex.ExperimentError, match="unknown experiment"):
        ex.run_experiment("does-not-exist")


def test_to_jsonable() -> None:
    value = {"a": np.float32(1.5), "b": (1, np.int64(2)), "c": math.nan, "d": Path("x")}
    assert ex.to_jsonable(value) == {"a": 1.5, "b": [1, 2], "c": None, "d": "x"}
