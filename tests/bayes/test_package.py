"""Packaging: lazy imports, the package-dir mapping, editable and wheel installs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_import_bayes_is_light(tmp_path: Path) -> None:
    code = (
        "import sys, bayes\n"
        "heavy = [m for m in ('jax', 'torch', 'numpyro', 'botorch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'sample' in dir(bayes)\n"
        "print(bayes.__version__)"
    )
    result = _python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.1.0"


def test_installed_layout_maps_subpackages(tmp_path: Path) -> None:
    # Run outside the repository so the checkout is not on sys.path.
    code = (
        "import importlib.util, bayes.inference, bayes.models\n"
        "print(bayes.inference.__file__); print(bayes.models.__file__)\n"
        "assert importlib.util.find_spec('models') is None\n"
        "assert importlib.util.find_spec('inference') is None\n"
    )
    result = _python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    inference_file, models_file = result.stdout.split()
    assert Path(inference_file).parent.name == "inference"
    assert Path(models_file).parent.name == "models"


def test_unknown_attribute_raises() -> None:
    import bayes

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bayes.nope


def test_wheel_installs_bayes_inference_and_models(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("bayes-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "site")
    assert "bayes/inference/__init__.py" in names
    assert "bayes/models/__init__.py" in names
    assert "bayes/models/conjugate/__init__.py" in names
    assert "bayes/py.typed" in names
    assert not [n for n in names if n.startswith(("models/", "inference/"))]
    # The unpacked wheel goes first on sys.path, ahead of the editable
    # install's finder (which sits after the path finder on sys.meta_path).
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
        "import bayes, bayes.inference, bayes.models, bayes.inference.mcmc\n"
        "import bayes.models.conjugate\n"
        "for m in (bayes, bayes.inference, bayes.inference.mcmc, bayes.models.conjugate):\n"
        "    print(m.__file__)"
    )
    result = _python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = result.stdout.split()
    assert len(files) == 4
    assert all(f.startswith(str(tmp_path / "site")) for f in files), files
