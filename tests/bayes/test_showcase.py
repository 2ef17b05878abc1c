"""The README's main job runs end to end and leaves plots behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bayes import posteriordb


def test_showcase_prints_summary_and_writes_plots(tmp_path: Path) -> None:
    try:
        posteriordb.locate()  # the main job samples posteriordb's eight schools
    except posteriordb.PosteriorDBError:
        pytest.skip("posteriordb data folder not found")
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "bayes", "showcase", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "r_hat" in result.stdout and "ess_bulk" in result.stdout
    assert list(out.glob("*.png"))
