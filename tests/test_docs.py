"""The documentation site builds in strict mode (any warning fails)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"


def test_docs_build_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # no -q: it lowers the log level to errors, so griffe's docstring warnings were
    # never counted by --strict
    cmd = [str(MKDOCS), "build", "--strict", "-d", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").exists()
    assert (tmp_path / "benchmarks" / "index.html").exists()
    assert (tmp_path / "api" / "models-conjugate" / "index.html").exists()
    # Sphinx roles in docstrings render as code without their role name (tools/mkdocs_hooks.py).
    api_pages = list((tmp_path / "api").glob("*/index.html"))
    assert len(api_pages) > 5
    krosbl = (tmp_path / "api" / "models-krosbl" / "index.html").read_text()
    assert "<code>IRSProblem</code>" in krosbl
    for page in api_pages:
        html = page.read_text()
        assert ":class:<code>" not in html and ":func:<code>" not in html, page
