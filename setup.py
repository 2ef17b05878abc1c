"""Package discovery for the `bayes` distribution.

The folders ``inference/`` and ``models/`` at the repository root install as
``bayes.inference`` and ``bayes.models``; no top-level ``inference`` or
``models`` import name is installed. Sub-packages are discovered so that new
zoo entries need no change here.
"""

from setuptools import find_packages, setup


def _mapped(root: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(root)]


setup(
    packages=find_packages(include=["bayes", "bayes.*"])
    + _mapped("inference", "bayes.inference")
    + _mapped("models", "bayes.models"),
    package_dir={"bayes.inference": "inference", "bayes.models": "models"},
    package_data={"bayes": ["py.typed"], "": ["*.json", "*.csv", "*.npz"]},
)
