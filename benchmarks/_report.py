"""Shared helpers for benchmark scripts: machine description and report sections.

Each benchmark owns one section of ``docs/benchmarks.md`` delimited by
``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` and rewrites only that
section, so scripts can run in any order.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["machine_description", "markdown_table", "timed", "write_section"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine_description() -> str:
    """One line: CPU model, cores, memory, accelerator and key package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    from bayes.experiments import package_versions

    versions = package_versions()
    keys = ("jax", "numpyro", "blackjax", "torch", "botorch")
    pkgs = ", ".join(f"{k} {versions[k]}" for k in keys if k in versions)
    accel = "no accelerator"
    try:
        import jax

        devices = jax.devices()
        if devices and devices[0].platform != "cpu":
            accel = f"{len(devices)} x {devices[0].device_kind}"
    except Exception:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, {accel}; Python {platform.python_version()}; {pkgs}"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = ".3g") -> str:
    """A Markdown table; floats formatted with ``fmt``."""

    def cell(v: Any) -> str:
        return format(v, fmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) section ``name`` of docs/benchmarks.md.

    Args:
        name: Section key, e.g. ``"mcmc"``.
        title: Heading shown on the page.
        body: Markdown content (tables, notes); the machine line and date are added.
    """
    stamp = time.strftime("%Y-%m-%d")
    block = (
        f"<!-- begin: {name} -->\n## {title}\n\n"
        f"Measured {stamp} on: {machine_description()}.\n\n{body.strip()}\n"
        f"<!-- end: {name} -->"
    )
    text = doc.read_text()
    pattern = re.compile(
        rf"<!-- begin: {re.escape(name)} -->.*?<!-- end: {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    doc.write_text(text)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn`` and return ``(result, seconds)``; JAX outputs are blocked on."""
    t0 = time.perf_counter()
    out = fn()
    try:
        import jax

        out = jax.block_until_ready(out)
    except Exception:
        pass
    return out, time.perf_counter() - t0
