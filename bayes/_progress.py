"""Progress bars shared by samplers, loops and experiments (tqdm underneath)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled(requested: bool = True) -> bool:
    """Whether to draw bars: requested and not silenced by ``$BAYES_PROGRESS=0``."""
    return requested and os.environ.get("BAYES_PROGRESS", "1") not in {"0", "false", "no"}


def progress_bar(total: int | None = None, desc: str = "", enabled: bool = True, **kwargs: Any):
    """A tqdm bar on standard error, disabled when progress is off.

    Args:
        total: Number of expected updates (``None`` when unknown).
        desc: Label shown before the bar.
        enabled: Draw the bar (still respects ``$BAYES_PROGRESS``).
        **kwargs: Passed to ``tqdm.tqdm``.

    Returns:
        A ``tqdm`` instance usable as a context manager.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        disable=not progress_enabled(enabled),
        dynamic_ncols=True,
        leave=False,
        **kwargs,
    )
