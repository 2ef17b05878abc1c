"""Registry of reproducible experiments.

A zoo entry registers experiments in its ``experiments`` module::

    from bayes.experiments import RunContext, experiment

    @experiment("conjugate-normal", "NUTS on a conjugate Normal model vs its exact posterior")
    def conjugate_normal(ctx: RunContext) -> dict:
        ...  # heavy imports go here, not at module level
        return {"max_abs_error": 0.01}

:func:`registry` finds the ``experiments.py`` of every zoo entry (plus the
modules in ``EXTRA_MODULES``) and reads the ``@experiment(...)`` declarations
from their source, without importing them: importing a zoo module runs its
package ``__init__``, which may import JAX, and ``bayes run --list`` must stay
fast. A module is imported only when one of its experiments runs.
:func:`run_experiment` calls the function with a :class:`RunContext` and
writes ``results.json`` (the returned figures, the settings, package
versions, timings and the list of plots) to ``ctx.out``.

Nothing is lost when a long run is interrupted: an experiment wraps each
independent job in :meth:`RunContext.cached`, which stores the job's result in
``out/.partial/<key>.json`` as soon as it is computed. Running the same
experiment again with the same output folder, ``quick``, ``seed`` and job
settings reuses those files instead of recomputing; any other settings
recompute. The folder is removed once ``results.json`` is written, so partial
results live only between an interruption and the run that completes.
"""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import importlib
import importlib.util
import json
import math
import os
import pkgutil
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "EXTRA_MODULES",
    "PARTIAL_DIR",
    "Experiment",
    "ExperimentError",
    "RunContext",
    "experiment",
    "package_versions",
    "registry",
    "run_experiment",
    "to_jsonable",
]

#: Modules outside the zoo that register experiments (imported when present).
EXTRA_MODULES: tuple[str, ...] = ("bayes.bo.experiments",)

_REGISTRY: dict[str, Experiment] = {}
_DISCOVERED = False
T = TypeVar("T")
PARTIAL_DIR = ".partial"
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ExperimentError(ValueError):
    """Bad request to the registry: unknown name, unusable output folder."""


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: Unique name used on the command line (``bayes run NAME``).
        description: One line shown by ``bayes run --list``.
        fn: ``fn(ctx: RunContext) -> dict`` returning JSON-able results.
        module: Module that defined it.
    """

    name: str
    description: str
    fn: Callable[[RunContext], dict[str, Any]] | None
    module: str

    def load(self) -> Callable[[RunContext], dict[str, Any]]:
        """The experiment function, importing its module on first use."""
        if self.fn is not None:
            return self.fn
        importlib.import_module(self.module)
        loaded = _REGISTRY.get(self.name)
        if loaded is None or loaded.fn is None:
            raise ExperimentError(f"{self.module} does not define experiment {self.name!r}")
        return loaded.fn


@dataclass
class RunContext:
    """What an experiment gets: its settings and helpers to report.

    Attributes:
        quick: Reduced size that finishes in under a minute on 2 cores.
        seed: Master seed; derive every random stream from it.
        out: Output folder (exists and is writable).
        progress: Whether to show progress bars.
        figures: Names of the PNG files written through :meth:`savefig`.
        name: Name of the running experiment (recorded with every cached job).
        jobs: Number of :meth:`cached` calls so far.
        jobs_reused: How many of them were read back from an earlier run.
        reused_s: Compute time, as first measured, of the jobs read back.
    """

    quick: bool
    seed: int
    out: Path
    progress: bool = True
    figures: list[str] = field(default_factory=list)
    name: str = ""
    jobs: int = 0
    jobs_reused: int = 0
    reused_s: float = 0.0
    _keys: set[str] = field(default_factory=set, init=False, repr=False)

    @property
    def partial_dir(self) -> Path:
        """Folder of the per-job results kept until the run completes."""
        return self.out / PARTIAL_DIR

    def cached(
        self, key: str, fn: Callable[[], dict[str, Any]], settings: Any = None
    ) -> dict[str, Any]:
        """Run one job of the experiment, or read its result back from an interrupted run.

        If ``out/.partial/<key>.json`` was written by this experiment with the same
        ``quick``, ``seed`` and ``settings``, its stored result is returned and ``fn`` is
        not called. Otherwise ``fn()`` runs and its result is written there atomically
        (a temporary file, then ``os.replace``), so a kill at any moment leaves either
        the whole file or none.

        The result goes through a JSON round trip in both cases (NumPy/JAX scalars and
        arrays become floats, ints and lists; tuples become lists; NaN and infinities are
        kept), so a resumed run computes exactly what an uninterrupted one does.

        Args:
            key: Name of the job, unique within the run: letters, digits, ``.``, ``_``
                and ``-`` (e.g. ``"boston-seed3"``).
            fn: Computes the job's result, a JSON-able dict.
            settings: Everything else the job's result depends on (sizes, step counts,
                hyperparameters), JSON-able. A stored result made with other settings
                is never reused.

        Returns:
            The job's result after the JSON round trip.

        Raises:
            ValueError: A malformed key, a key used twice in one run, or settings or a
                result that JSON cannot hold.
        """
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(
                f"job key {key!r} must be 1-128 letters, digits, '.', '_' or '-' "
                "(not starting with '.', '_' or '-')"
            )
        if key in self._keys:
            raise ValueError(f"job key {key!r} is used twice in one run")
        self._keys.add(key)
        self.jobs += 1
        stamp = {"experiment": self.name, "quick": self.quick, "seed": self.seed}
        try:
            stamp["settings"] = _roundtrip(settings)
        except (TypeError, ValueError) as err:
            raise ValueError(f"settings of job {key!r} are not JSON-able: {err}") from None
        stamp["digest"] = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()
        path = self.partial_dir / f"{key}.json"
        stored = _read_json(path)
        if stored is not None and stored.get("digest") == stamp["digest"]:
            self.jobs_reused += 1
            if self.jobs_reused == 1:
                self.log(f"resuming: reading finished jobs back from {self.partial_dir}")
            self.reused_s += float(stored.get("elapsed_s", 0.0))
            return stored["result"]
        t0 = time.perf_counter()
        result = fn()
        if not isinstance(result, dict):
            raise ValueError(f"job {key!r} returned {type(result).__name__}, not a dict")
        try:
            result = _roundtrip(result)
        except (TypeError, ValueError) as err:
            raise ValueError(f"result of job {key!r} is not JSON-able: {err}") from None
        entry = {**stamp, "key": key, "elapsed_s": time.perf_counter() - t0, "result": result}
        self.partial_dir.mkdir(exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)
        return result

    def savefig(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``out/name.png`` and close it."""
        import matplotlib.pyplot as plt

        filename = name if name.endswith(".png") else f"{name}.png"
        path = self.out / filename
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(filename)
        return path

    def track(self, iterable: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
        """Iterate with a progress bar (a no-op wrapper when progress is off)."""
        from bayes._progress import progress_bar

        with progress_bar(total=total, desc=desc, enabled=self.progress) as bar:
            for item in iterable:
                yield item
                bar.update(1)

    def log(self, message: str) -> None:
        """Print a status line to standard error (kept out of stdout)."""
        print(message, file=sys.stderr, flush=True)


def experiment(name: str, description: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator registering ``fn(ctx) -> dict`` as experiment ``name``.

    Args:
        name: Unique, lower-case, dash-separated name.
        description: One line for ``bayes run --list``.

    Raises:
        ValueError: If ``name`` is already taken by another function.
    """

    def decorate(fn: Callable[..., dict]) -> Callable[..., dict]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.module != fn.__module__:
            raise ValueError(f"experiment {name!r} is already registered by {existing.module}")
        _REGISTRY[name] = Experiment(name, " ".join(description.split()), fn, fn.__module__)
        return fn

    return decorate


def _declared(path: Path, module: str) -> list[Experiment]:
    """Experiments declared with ``@experiment("name", "description")`` in a source file."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and len(deco.args) >= 2):
                continue
            callee = deco.func
            callee_name = callee.attr if isinstance(callee, ast.Attribute) else None
            if isinstance(callee, ast.Name):
                callee_name = callee.id
            args = deco.args[:2]
            if callee_name == "experiment" and all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args
            ):
                name, description = (a.value for a in args)
                found.append(Experiment(name, " ".join(description.split()), None, module))
    return found


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    import bayes.models

    sources: list[tuple[Path, str]] = []
    for info in pkgutil.iter_modules(bayes.models.__path__):
        if info.ispkg:
            folder = Path(info.module_finder.path) / info.name  # type: ignore[union-attr]
            sources.append((folder / "experiments.py", f"bayes.models.{info.name}.experiments"))
    for module_name in EXTRA_MODULES:
        parent, _, leaf = module_name.rpartition(".")
        try:
            spec = importlib.util.find_spec(parent)
        except ModuleNotFoundError:
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            sources.append((Path(location) / f"{leaf}.py", module_name))
    for path, module_name in sources:
        if path.is_file():
            for exp in _declared(path, module_name):
                _REGISTRY.setdefault(exp.name, exp)
    _DISCOVERED = True


def registry() -> dict[str, Experiment]:
    """All registered experiments, by name (sorted); functions load on demand."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def package_versions() -> dict[str, str]:
    """Versions of Python and of the installed scientific packages."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (
        "bayes", "jax", "jaxlib", "numpyro", "blackjax", "optax", "arviz",
        "numpy", "scipy", "torch", "botorch", "gpytorch",
    ):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def to_jsonable(value: Any) -> Any:
    """Convert NumPy/JAX scalars and arrays, paths and tuples to JSON types.

    Non-finite floats become ``None`` so the output stays strict JSON.
    """
    return _json_types(value, strict=False)


def _json_types(value: Any, *, strict: bool) -> Any:
    """JSON types for :func:`to_jsonable` (``strict=False``) and the job cache.

    With ``strict=True`` non-finite floats are kept (Python's JSON reads them
    back) and a value of no JSON type raises ``TypeError`` instead of becoming
    its ``str``, so that a cached result reads back exactly as it was computed.
    """
    if isinstance(value, dict):
        return {str(k): _json_types(v, strict=strict) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_types(v, strict=strict) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):
        return _json_types(value.tolist(), strict=strict)
    if isinstance(value, float):
        return value if strict or math.isfinite(value) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if strict:
        raise TypeError(f"cannot store a {type(value).__name__}")
    if hasattr(value, "item"):
        return _json_types(value.item(), strict=strict)
    return str(value)


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(_json_types(value, strict=True)))


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _prepare_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".bayes-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ExperimentError(f"cannot write to output folder {str(out)!r}: {reason}") from None
    return out


def run_experiment(
    name: str,
    *,
    quick: bool = False,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Run a registered experiment and write ``results.json`` and its plots.

    Jobs run through :meth:`RunContext.cached` that an interrupted run with the same
    settings already finished are read back from ``out/.partial``; that folder is
    removed once ``results.json`` is written.

    Args:
        name: Registered name (see :func:`registry`).
        quick: Reduced size for tests and the showcase.
        seed: Master seed.
        out: Output folder; defaults to ``results/NAME``.
        progress: Show progress bars.
        resume: Reuse the job results of an interrupted run; ``False`` deletes them first.

    Returns:
        The content written to ``out/results.json``; its ``jobs`` entry counts the
            cached jobs (``total``) and those read back (``reused``).

    Raises:
        ExperimentError: Unknown name or unwritable output folder.
    """
    experiments = registry()
    if name not in experiments:
        known = ", ".join(experiments) or "none"
        raise ExperimentError(f"unknown experiment {name!r} (known: {known})")
    folder = _prepare_out(Path(out) if out is not None else Path("results") / name)
    ctx = RunContext(quick=quick, seed=seed, out=folder, progress=progress, name=name)
    if not resume:
        shutil.rmtree(ctx.partial_dir, ignore_errors=True)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    results = experiments[name].load()(ctx)
    timings = {"total_s": time.perf_counter() - t0}
    if ctx.jobs_reused:
        timings["reused_jobs_s"] = ctx.reused_s
    record = {
        "experiment": name,
        "description": experiments[name].description,
        "settings": {"quick": quick, "seed": seed, "out": str(folder)},
        "results": results,
        "figures": ctx.figures,
        "jobs": {"total": ctx.jobs, "reused": ctx.jobs_reused},
        "timings": timings,
        "started": started,
        "versions": package_versions(),
    }
    record = to_jsonable(record)
    tmp = folder / "results.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, folder / "results.json")
    # the record is complete: stale job files must not outlive the run whose settings they had
    shutil.rmtree(ctx.partial_dir, ignore_errors=True)
    return record
