"""The `bayes` command line: fast help, version, the experiments registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bayes.cli import main


def _bayes(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bayes", *args],
        capture_output=True, text=True, cwd=cwd, check=False,
    )  # fmt: skip


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from bayes.cli import build_parser\n"
        "text = build_parser().format_help()\n"
        "from bayes.experiments import registry\n"
        "names = list(registry())\n"
        "heavy = ('jax', 'torch', 'numpyro', 'arviz', 'matplotlib')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'run' in text and 'version' in text and names\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "version", "showcase"):
        assert command in out


def test_version_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)
    assert versions["bayes"] == "0.1.0"
    assert "jax" in versions


def test_run_list_shows_example_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("conjugate-normal ") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
        (["run"], "name an experiment"),
        (["run", "conjugate-normal", "--seed", "abc"], "invalid int value"),
        (["run", "--bogus"], "unrecognized arguments"),
        (["nope"], "invalid choice"),
    ],
)
def test_bad_input_one_line_exit_2(args: list[str], message: str) -> None:
    result = _bayes(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_unwritable_out_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _bayes("run", "conjugate-normal", "--quick", "--out", str(blocker / "sub"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "cannot write to output folder" in result.stderr
    assert blocker.read_text() == "not a folder"


def test_run_conjugate_normal_quick(tmp_path: Path) -> None:
    """End to end: results.json and the plot, and the posterior matches the exact one."""
    result = _bayes("run", "conjugate-normal", "--quick", "--seed", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["settings"] == {"quick": True, "seed": 3, "out": str(tmp_path)}
    assert record["figures"] == ["posterior.png"]
    assert (tmp_path / "posterior.png").stat().st_size > 1000
    assert "jax" in record["versions"] and record["timings"]["total_s"] > 0
    res = record["results"]
    # The sampler error, measured in Monte Carlo standard errors, is ~N(0, 1).
    assert abs(res["mean_error_in_mcse"]) < 5
    assert abs(res["sd_error_in_mcse"]) < 5
    assert res["r_hat"] < 1.05
