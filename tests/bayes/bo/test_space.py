"""Search spaces: validation, unit-cube round trips, snapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayes.bo.space import Categorical, Integer, Real, Space, SpaceError


def test_round_trip_mixed_space() -> None:
    space = Space(
        [Real("lr", 1e-4, 1e-1, log=True), Integer("layers", 1, 5),
         Categorical("act", ("relu", "tanh", "gelu")), Real("w", -2.0, 3.0)]
    )  # fmt: skip
    params = {"lr": 1e-2, "layers": 4, "act": "gelu", "w": 0.5}
    u = space.encode(params)
    assert u.dtype == np.float64 and u.shape == (4,)
    assert np.all((u >= 0) & (u <= 1))
    # log scale: 1e-2 is two thirds of the way from 1e-4 to 1e-1 in log10
    assert u[0] == pytest.approx(2 / 3)
    assert u[3] == pytest.approx(0.5)
    back = space.decode(u)
    assert back["layers"] == 4 and back["act"] == "gelu"
    assert math.isclose(back["lr"], 1e-2, rel_tol=1e-12) and math.isclose(back["w"], 0.5)


def test_snap_gives_the_evaluated_point(np_rng: np.random.Generator) -> None:
    space = Space({"n": (0, 3), "c": ["a", "b"], "x": (0.0, 1.0)})
    U = np_rng.random((20, 3))
    S = space.snap(U)
    for s in S:
        assert np.allclose(space.encode(space.decode(s)), s)
        assert space.decode(s)["n"] in range(4)
    assert np.allclose(S[:, 2], U[:, 2])
    assert set(np.unique(S[:, 0])) <= {0.0, 1 / 3, 2 / 3, 1.0}


def test_shorthand_types() -> None:
    space = Space({"a": (0, 10), "b": (0.0, 1.0), "c": ["x", "y"]})
    kinds = [type(p) for p in space.parameters]
    assert kinds == [Integer, Real, Categorical]
    assert Space(space.to_list()) == space


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Space([]), "at least one parameter"),
        (lambda: Space([Real("a", 0.0, 1.0), Real("a", 0.0, 2.0)]), "duplicate parameter names: a"),
        (lambda: Real("a", 1.0, 1.0), "empty range"),
        (lambda: Integer("k", 3, 2), "empty range"),
        (lambda: Real("a", 0.0, 1.0, log=True), "log scale needs low > 0"),
        (lambda: Categorical("c", ("x",)), "at least 2 choices"),
        (lambda: Categorical("c", ("x", "x")), "duplicate choices"),
        (lambda: Space([{"name": "a", "type": "complex"}]), "unknown parameter type"),
        (lambda: Space({"a": "nope"}), "use \\(low, high\\)"),
        (lambda: Real("not a name", 0.0, 1.0), "identifier"),
        (lambda: Real("a", 0.0, math.inf), "finite"),
    ],
)
def test_invalid_spaces(make, match: str) -> None:
    with pytest.raises(SpaceError, match=match):
        make()


def test_points_outside_the_space_rejected() -> None:
    space = Space([Real("x", 0.0, 1.0), Categorical("c", ("a", "b"))])
    with pytest.raises(SpaceError, match="outside"):
        space.encode({"x": 2.0, "c": "a"})
    with pytest.raises(SpaceError, match="not one of"):
        space.encode({"x": 0.5, "c": "z"})
    with pytest.raises(SpaceError, match="missing \\['c'\\]"):
        space.encode({"x": 0.5})


def test_bo_modules_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import bayes.bo, bayes.bo.study, bayes.bo.loop, bayes.bo.problems, bayes.bo.report\n"
        "import bayes.bo.experiments, bayes.commands.optimize, bayes.commands.report\n"
        "heavy = [m for m in ('torch', 'botorch', 'jax', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
