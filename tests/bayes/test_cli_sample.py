"""``bayes sample`` and ``bayes diagnose``: JSON output, NetCDF, plots, one-line errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from bayes import posteriordb
from bayes.cli import main
from bayes.diagnostics import convergence_warnings

ROOT = Path(__file__).resolve().parents[2]
EIGHT = ROOT / "examples" / "posteriordb" / "eight_schools_noncentered.py"
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "BAYES_PROGRESS": "0", "MPLBACKEND": "Agg"}


def _bayes(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bayes", *args], env=ENV, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


@pytest.mark.slow
def test_sample_json_then_diagnose(tmp_path: Path) -> None:
    try:
        posteriordb.locate()
    except posteriordb.PosteriorDBError:
        pytest.skip("posteriordb data folder not found")
    out = tmp_path / "run.nc"
    # the settings of the NUTS posteriordb test, so the compiled program is shared
    done = _bayes("sample", str(EIGHT), "--x64", "--warmup", "500", "--draws", "500",
                  "--seed", "3", "--json", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    params = record["parameters"]
    expected = {f"theta[{i}]" for i in range(8)} | {f"theta_trans[{i}]" for i in range(8)}
    assert set(params) == expected | {"mu", "tau"}
    for row in params.values():
        assert set(row) == {"mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"}
    assert isinstance(record["divergences"], int)
    assert set(record["timings"]) == {"compile_s", "warmup_s", "sampling_s"}
    ref = posteriordb.reference_means("eight_schools-eight_schools_noncentered")
    for stan_name, name in (("mu", "mu"), ("tau", "tau"), ("theta[1]", "theta[0]")):
        mean, mcse = ref[stan_name]
        z = (params[name]["mean"] - mean) / math.hypot(params[name]["mcse_mean"], mcse)
        assert abs(z) < 4, (name, z)
    idata = az.from_netcdf(str(out))
    assert idata.posterior["theta"].shape == (4, 500, 8)
    assert params["mu"]["mean"] == pytest.approx(float(idata.posterior["mu"].mean()), rel=1e-12)

    plots = tmp_path / "plots"
    done = _bayes("diagnose", str(out), "--plots", str(plots))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "r_hat" in done.stdout and "ess_bulk" in done.stdout
    assert sorted(p.name for p in plots.glob("*.png")) == ["pair.png", "rank.png", "trace.png"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


MODEL = """
import numpyro, numpyro.distributions as dist
def model(x, y=None):
    m = numpyro.sample("m", dist.Normal(0, 1))
    numpyro.sample("y", dist.Normal(m * x, 1), obs=y)
data = {"x": [1.0, 2.0], "y": [0.5, 1.0]}
"""


def _error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_sample_user_errors_are_one_line(tmp_path: Path, capsys) -> None:
    model = _write(tmp_path / "m.py", MODEL)
    assert "model file not found" in _error(capsys, "sample", str(tmp_path / "none.py"))
    empty = _write(tmp_path / "empty.py", "x = 1\n")
    assert "defines no function `model`" in _error(capsys, "sample", str(empty))
    extra = _write(tmp_path / "extra.json", json.dumps({"x": [1.0], "z": [2.0]}))
    assert "takes no argument 'z'" in _error(capsys, "sample", str(model), "--data", str(extra))
    lacking = _write(tmp_path / "lacking.json", json.dumps({"y": [1.0]}))
    assert "lacks 'x'" in _error(capsys, "sample", str(model), "--data", str(lacking))
    nan = _write(tmp_path / "nan.json", json.dumps({"x": [1.0, float("nan")], "y": [1.0, 2.0]}))
    assert "NaN" in _error(capsys, "sample", str(model), "--data", str(nan))
    inf = _write(tmp_path / "inf.json", json.dumps({"x": [1.0, float("inf")], "y": [1.0, 2.0]}))
    assert "infinite" in _error(capsys, "sample", str(model), "--data", str(inf))
    assert "data file not found" in _error(capsys, "sample", str(model), "--data", "no.json")
    never = 'numpyro.factor("no", -float("inf")); numpyro.sample("y"'
    bad = _write(tmp_path / "bad.py", MODEL.replace('numpyro.sample("y"', never))
    msg = _error(capsys, "sample", str(bad), "--warmup", "10", "--draws", "10", "--no-progress")
    assert "not finite at any of the 100 initial points" in msg
    assert "run file not found" in _error(capsys, "diagnose", str(tmp_path / "none.nc"))


def test_sample_mass_matrix_option(tmp_path: Path, capsys) -> None:
    one, two = "dist.Normal(m * x, 1)", 'dist.Normal(m * x + numpyro.sample("c", dist.Normal()), 1)'
    model = _write(tmp_path / "m.py", MODEL.replace(one, two))  # two parameters
    run = ("sample", str(model), "--warmup", "100", "--draws", "50", "--no-progress",
           "--out", str(tmp_path / "run.nc"))  # fmt: skip
    assert main([*run, "--mass-matrix", "dense"]) == 0
    assert "mass matrix dense x4;" in capsys.readouterr().out
    assert main([*run, "--mass-matrix", "diagonal"]) == 0
    assert "mass matrix diagonal x4;" in capsys.readouterr().out
    msg = _error(capsys, *run, "--method", "smc", "--mass-matrix", "dense")
    assert "--mass-matrix is an option of nuts and hmc, not smc" in msg


def _idata(rng: np.random.Generator, shift: float, diverging: int, energy_walk: bool):
    x = rng.normal(size=(4, 100)) + shift * np.arange(4)[:, None]
    energy = rng.normal(size=(4, 100))
    if energy_walk:
        energy = np.cumsum(energy, axis=1)
    div = np.zeros((4, 100), bool)
    div.flat[:diverging] = True
    return az.from_dict(posterior={"x": x}, sample_stats={"energy": energy, "diverging": div})


def test_convergence_warnings_name_each_problem(np_rng) -> None:
    warnings = " | ".join(convergence_warnings(_idata(np_rng, 3.0, 5, True)))
    assert "R-hat above 1.01" in warnings
    assert "bulk ESS below 400" in warnings and "tail ESS below 400" in warnings
    assert "5 of 400 transitions diverged" in warnings
    assert "E-BFMI below 0.3" in warnings
    good = az.from_dict(
        posterior={"x": np_rng.normal(size=(4, 1000))},
        sample_stats={
            "energy": np_rng.normal(size=(4, 1000)),
            "diverging": np.zeros((4, 1000), bool),
        },
    )
    assert convergence_warnings(good) == []
