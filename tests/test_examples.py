"""Every runnable script in examples/ runs at its smallest size (``--quick``).

A script is a ``.py`` file with a ``__main__`` guard; model files (such as the
posteriordb models) have none and are exercised by their own tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p for p in (ROOT / "examples").rglob("*.py") if 'if __name__ == "__main__"' in p.read_text()
)


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_example_runs_quick(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg", "BAYES_PROGRESS": "0"}
    result = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_there_are_examples() -> None:
    assert SCRIPTS, "examples/ has no runnable script"
