"""MkDocs hook: expose the installed package layout to mkdocstrings.

In the repository, ``bayes.inference`` and ``bayes.models`` live in the root
folders ``inference/`` and ``models/`` (mapped by setuptools at install time).
The API-reference collector reads sources from disk, so this hook builds
``build/docs-pkg/bayes`` as a tree of symbolic links with the installed layout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "docs-pkg"


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def stage() -> None:
    """Create or refresh the linked tree."""
    pkg = STAGE / "bayes"
    pkg.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in (ROOT / "bayes").iterdir() if p.name != "__pycache__"}
    wanted["inference"] = ROOT / "inference"
    wanted["models"] = ROOT / "models"
    for stale in pkg.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, target in wanted.items():
        _link(Path(os.path.relpath(target, pkg)), pkg / name)


# At import: mkdocstrings drops search paths that do not exist yet when it
# reads its configuration, which happens before any hook event fires.
stage()


def on_config(config, **kwargs):
    stage()
    return config


# Docstrings use Sphinx roles (":func:`x`"); mkdocstrings renders the backquoted part
# as code and leaves the role name in front of it as text.
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|math):(?=<code>)")


def on_page_content(html, **kwargs):
    return _ROLE.sub("", html)
