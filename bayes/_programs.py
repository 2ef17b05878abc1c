"""Compiled sampler programs kept on disk, so that a new process need not trace them.

JAX's persistent compilation cache saves a new process the XLA compilation of
a program, but not its tracing and lowering: to compute the cache key JAX must
trace the Python function to a jaxpr and lower it to StableHLO. For the NUTS
chunk programs that is most of the start-up cost (about 1 s per program on a
laptop CPU for eight schools: BlackJAX's trajectory builder, window
adaptation, ``vmap`` and ``scan``), and it is spent again in every process.

This module keys a compiled program by what it is a function of, computed
without tracing it:

- the *target*, by the jaxpr of ``jax.value_and_grad`` of its log-density at
  the target's data and position shapes (closed-over constants hashed by
  value). Tracing the model alone is cheap, and a jaxpr under
  differentiation spells out every operation the samplers apply, custom
  derivative rules included; whatever the model's Python code looks like,
  two targets with the same such jaxpr compute the same thing;
- the program's name and static settings, and the shapes, dtypes, weak types
  and shardings of its arguments;
- the environment: versions of JAX, jaxlib, BlackJAX and NumPyro, a digest of
  the source of the modules the programs are built from (:data:`_SOURCES`),
  the devices, ``XLA_FLAGS``, JAX's configuration and, on a CPU, the
  processor's feature flags.

A hit deserializes the executable (``jax.experimental.serialize_executable``)
in milliseconds. Anything that cannot be keyed this way (a static argument of
unknown type, a log-density that cannot be differentiated abstractly) is
simply not stored, and a file that fails to load is deleted and the program
compiled as usual: the store can only save time, never change a result.

Programs live in ``programs/`` inside JAX's compilation cache folder (see
:func:`bayes.config.enable_compilation_cache`); only those that took at least
:data:`MIN_SECONDS` to build are kept, and the folder is held under
:data:`MAX_BYTES` by deleting the least recently used. ``$BAYES_NO_PROGRAM_CACHE=1``
turns the store off. The files are pickles: like JAX's own cache, the folder
must be writable by its user only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import pickle
import re
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_BYTES",
    "MIN_SECONDS",
    "Checked",
    "compile_and_store",
    "folder",
    "load",
    "program_key",
    "run",
    "store",
]

_ENV_DISABLE = "BAYES_NO_PROGRAM_CACHE"
_SCHEMA = "bayes-programs-1"
MIN_SECONDS = 0.2
MAX_BYTES = 512 * 2**20
# JAX options that name where things are kept, not what a program computes
_CONFIG_IGNORED = frozenset({"jax_compilation_cache_dir"})
# (spec, data and position types) -> digest; bounded, as a spec holds its model
_FINGERPRINTS: OrderedDict[Any, str | None] = OrderedDict()
_MAX_FINGERPRINTS = 256
# Custom calls are kernels that jaxlib registers with XLA. A deserialized
# executable calling one that is not yet registered in this process crashes it,
# so only programs whose custom calls are all known to be ready are stored:
# LAPACK's (registered by `_lapack_ready` before loading) and XLA's own GPU
# library calls.
_CUSTOM_CALL = re.compile(r'custom_call_target="([^"]+)"')
_READY_PREFIXES = ("lapack_", "__cublas$", "__cudnn$", "__gpu$")
# An executable that JAX loaded from its persistent cache serializes without its
# compiled kernels (a new process then fails with "Function ... not found"), so
# only a real compilation may be stored. A program for the store is compiled
# with an XLA option that only changes debugging text (how many buffers an
# out-of-memory report lists) set to a number taken from the store's key, and
# that JAX's cache key includes: the program's entry in JAX's cache then exists
# only if this store wrote the same key. A JAX cache hit means that the file
# was lost (evicted or damaged); the program is then compiled once more with
# a random tag, for a complete executable to store.
_TAG_OPTION = "xla_debug_buffer_assignment_show_max"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_local = threading.local()
_listening = False
# key -> Future of its executable, loading in the background (see `load`)
_PREFETCHED: dict[str, Any] = {}
_pool: Any = None


def folder() -> Path | None:
    """The store's folder, or ``None`` when it is off (no compilation cache, or disabled)."""
    if os.environ.get(_ENV_DISABLE):
        return None
    import jax

    base = jax.config.jax_compilation_cache_dir
    return Path(base) / "programs" if base else None


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _version(name: str) -> str:
    module = sys.modules.get(name)
    version = getattr(module, "__version__", None)
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as metadata_version

        try:
            version = metadata_version(name)
        except PackageNotFoundError:
            version = "absent"
    return f"{name}={version}"


# The modules whose code runs while the stored programs are traced (a test
# records it), relative to the `bayes` and `bayes.inference` folders. Only
# their source is in the key, so that editing other modules (the CLI, the BO
# loop, ...) keeps the stored programs.
_SOURCES = (
    "bayes/sampling.py",
    "bayes/_mcmc_run.py",
    "bayes/target.py",
    "bayes/_programs.py",
    "inference/mcmc",
)


def _source_files() -> list[Path]:
    """The files of :data:`_SOURCES`, folders expanded to their ``.py`` files."""
    import bayes
    import bayes.inference

    roots = {"bayes": Path(bayes.__file__).parent,
             "inference": Path(bayes.inference.__file__).parent}  # fmt: skip
    files = []
    for entry in _SOURCES:
        top, _, rest = entry.partition("/")
        path = roots[top] / rest
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _sources() -> str:
    """Digest of the source of the modules the stored programs are built from."""
    return _digest(*(part for f in _source_files() for part in (f.name, f.read_bytes())))


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@functools.cache
def _environment() -> str:
    import jax

    devices = jax.devices()
    parts = [
        _SCHEMA,
        *(_version(n) for n in ("jax", "jaxlib", "blackjax", "numpyro")),
        _sources(),
        repr([(d.platform, d.device_kind, d.id) for d in devices]),
        devices[0].client.platform_version,
        os.environ.get("XLA_FLAGS", ""),  # read by XLA once, when its backend starts
    ]
    if devices[0].platform == "cpu":
        parts.append(_cpu_flags())
    return _digest(*parts)


def _avals(tree: Any) -> str:
    import jax

    leaves, treedef = jax.tree.flatten(tree)
    described = []
    for leaf in leaves:
        aval = jax.typeof(leaf)
        sharding = getattr(leaf, "sharding", None) if isinstance(leaf, jax.Array) else None
        described.append(f"{aval.str_short()}|{aval.weak_type}|{sharding!r}")
    return f"{treedef}:{described}"


def _target_fingerprint(target: Any) -> str | None:
    """Digest of the jaxpr of ``value_and_grad`` of the target's log-density, or None."""
    import jax

    key = (target.spec, _avals(target.data), _avals(target.example_position))
    if key in _FINGERPRINTS:
        _FINGERPRINTS.move_to_end(key)
    else:
        while len(_FINGERPRINTS) >= _MAX_FINGERPRINTS:
            _FINGERPRINTS.popitem(last=False)
        spec = target.spec
        try:
            closed = jax.make_jaxpr(lambda p, d: jax.value_and_grad(spec.logdensity)(p, d))(
                target.example_position, target.data
            )
        except Exception:  # not differentiable abstractly: such a target is not stored
            _FINGERPRINTS[key] = None
        else:
            values: list[str | bytes] = []
            _jaxpr_values(closed, values, set())
            _FINGERPRINTS[key] = _digest(str(closed), *values)
    return _FINGERPRINTS[key]


def _jaxpr_values(item: Any, out: list, seen: set) -> None:
    """Append the values a jaxpr's text leaves out: constants and array literals.

    A printed jaxpr names its constants (``lambda a:f32[3]; ...``), also those
    of the jaxprs nested in its equations (``jit``, ``scan``, ``cond``, ...),
    but does not show their values; they are collected here, depth first.
    """
    import numpy as np

    if id(item) in seen:
        return
    seen.add(id(item))
    if hasattr(item, "consts") and hasattr(item, "jaxpr"):  # ClosedJaxpr
        for c in item.consts:
            a = np.asarray(c)
            out += [f"{a.dtype}{a.shape}", np.ascontiguousarray(a).tobytes()]
        _jaxpr_values(item.jaxpr, out, seen)
    elif hasattr(item, "eqns"):  # Jaxpr
        for eqn in item.eqns:
            for var in eqn.invars:
                if hasattr(var, "val"):  # a literal
                    a = np.asarray(var.val)
                    out += [f"{a.dtype}{a.shape}", np.ascontiguousarray(a).tobytes()]
            for param in eqn.params.values():
                for sub in param if isinstance(param, tuple | list) else (param,):
                    if hasattr(sub, "eqns") or hasattr(sub, "consts"):
                        _jaxpr_values(sub, out, seen)


def _stable(value: Any, target: Any) -> str | None:
    """Canonical text of a static key, or None if some part cannot be named by value."""
    from bayes.target import TargetSpec

    if value is None or isinstance(value, bool | int | float | str):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, tuple | list):
        items = [_stable(v, target) for v in value]
        return None if None in items else f"({','.join(items)})"
    if isinstance(value, TargetSpec):
        if target is None or value is not target.spec:
            return None
        fingerprint = _target_fingerprint(target)
        return None if fingerprint is None else f"target:{fingerprint}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
        return _stable((type(value).__qualname__, *fields), target)
    return None


def program_key(name: str, key: Any, args: tuple, target: Any = None) -> str | None:
    """The store's key of program ``name`` with static ``key`` for ``args``, or None.

    Args:
        name: Which program (``"chunk"``, ``"init"``, ...).
        key: Its static configuration; a :class:`~bayes.target.TargetSpec` in
            it must be ``target.spec``.
        args: The arguments it is compiled for.
        target: The :class:`~bayes.target.Target` whose log-density the program uses.

    Returns:
        A hex digest, or ``None`` when the store is off or the program cannot
            be keyed without tracing it.
    """
    if folder() is None:
        return None
    import jax

    static = _stable(key, target)
    if static is None:
        return None
    # JAX's options are read at every key: a process may change them between programs
    config = repr(sorted((k, repr(v)) for k, v in jax.config.values.items()
                         if k not in _CONFIG_IGNORED))  # fmt: skip
    return _digest(_environment(), config, name, static, _avals(args))


def _custom_calls(compiled: Any) -> list[str]:
    return sorted(set(_CUSTOM_CALL.findall(compiled.as_text())))


_lapack_lock = threading.Lock()


def _ready(custom_calls: list[str]) -> bool:
    """Whether a new process can run a program making these custom calls."""
    return all(c.startswith(_READY_PREFIXES) for c in custom_calls)


def _lapack_ready() -> None:
    """Register jaxlib's LAPACK kernels, as lowering a linear-algebra op would (~0.1 s once)."""
    from jax._src.lax import linalg

    with _lapack_lock:
        linalg.initialize_lapack()


def _read(key: str) -> Any:
    """Deserialize the executable stored under ``key``; None if missing or unreadable."""
    path = folder() / f"{key}.pkl"
    try:
        custom_calls, payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        if not _ready(custom_calls):
            raise ValueError(f"custom calls not known to be registered: {custom_calls}")
        if any(c.startswith("lapack_") for c in custom_calls):
            _lapack_ready()
        from jax.experimental.serialize_executable import deserialize_and_load

        compiled = deserialize_and_load(payload, in_tree, out_tree)
    except FileNotFoundError:
        return None
    except Exception:  # a damaged or incompatible file: build the program instead
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # most recently used: kept longest
    return compiled


def load(key: str) -> Any:
    """The stored executable under ``key``, or ``None`` (missing or unreadable).

    The first program of a :func:`run` also starts loading, in background
    threads, the programs that followed it in the last run that began with
    it (its manifest), so that their deserialization overlaps the run's work.
    """
    future = _PREFETCHED.pop(key, None)
    compiled = future.result() if future is not None else _read(key)
    if compiled is not None:
        _note(key)
    return compiled


def _note(key: str) -> None:
    """Record ``key`` in the current run; its first key starts the prefetch."""
    keys = getattr(_local, "run", None)
    if keys is None or key in keys:
        return
    keys.append(key)
    if len(keys) == 1:
        _prefetch(_manifest(key))


def _manifest_path(key: str) -> Path:
    return folder() / "manifests" / f"{key}.json"


def _manifest(key: str) -> list[str]:
    import json

    try:
        keys = json.loads(_manifest_path(key).read_text())
    except (OSError, ValueError):
        return []
    return [k for k in keys if isinstance(k, str) and len(k) == 64 and k.isalnum()]


def _prefetch(keys: list[str]) -> None:
    global _pool
    keys = [k for k in keys if k not in _PREFETCHED and (folder() / f"{k}.pkl").exists()]
    if not keys:
        return
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bayes-programs")
    for k in keys:
        _PREFETCHED[k] = _pool.submit(_read, k)


@contextlib.contextmanager
def run() -> Iterator[None]:
    """Scope of one sampler run: records the programs it uses, in order, as a manifest.

    On exit the keys after the first are written as the first key's manifest,
    which the next run that starts with the same program prefetches. Programs
    prefetched but not asked for are dropped.
    """
    import json

    if folder() is None or getattr(_local, "run", None) is not None:
        yield
        return
    _local.run = []
    try:
        yield
    finally:
        keys, _local.run = _local.run, None
        for k in [k for k in list(_PREFETCHED) if k not in keys]:
            future = _PREFETCHED.pop(k, None)  # another thread's run may have taken it
            if future is not None:
                future.cancel()
        if len(keys) > 1 and keys[1:] != _manifest(keys[0]):
            try:
                path = _manifest_path(keys[0])
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    json.dump(keys[1:], f)
                os.replace(tmp, path)
            except OSError:
                pass


def store(key: str, compiled: Any) -> bool:
    """Write ``compiled`` under ``key`` atomically; errors only skip the write.

    Returns:
        Whether it was written.
    """
    target_folder = folder()
    try:
        custom_calls = _custom_calls(compiled)
        if not _ready(custom_calls):
            return False
        from jax.experimental.serialize_executable import serialize

        payload = (custom_calls, *serialize(compiled))
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        target_folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target_folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target_folder / f"{key}.pkl")
    except Exception:
        return False
    _evict(target_folder)
    return True


def _count_cache_hits(event: str, **kwargs: Any) -> None:
    if event == _CACHE_HIT_EVENT:
        _local.hits = getattr(_local, "hits", 0) + 1


def compile_and_store(key: str, lowered: Any, started: float) -> Any:
    """Compile ``lowered`` and store it under ``key`` if it was a real compilation.

    Args:
        key: The program's key (:func:`program_key`).
        lowered: A ``jax.stages.Lowered``.
        started: ``time.perf_counter()`` when building the program began; only
            programs that took :data:`MIN_SECONDS` or more are stored.

    Returns:
        The compiled program.
    """
    global _listening
    if not _listening:
        import jax

        jax.monitoring.register_event_listener(_count_cache_hits)
        _listening = True
    hits = getattr(_local, "hits", 0)
    compiled = lowered.compile(compiler_options={_TAG_OPTION: 2**30 + int(key[:7], 16)})
    if time.perf_counter() - started < MIN_SECONDS:
        return compiled
    if getattr(_local, "hits", 0) != hits:  # loaded from JAX's cache: not storable
        # from the OS, not `random`: a seeded stream would repeat the tag, and hit again
        tag = 2**30 + 2**28 + int.from_bytes(os.urandom(4), "little") % 2**28
        compiled = lowered.compile(compiler_options={_TAG_OPTION: tag})
    if store(key, compiled):
        _note(key)
    return compiled


class Checked:
    """A program loaded from the store, checked by its first call.

    A stored executable that lacks some of its kernels (written from one that
    JAX had loaded from its own cache; this module avoids writing such files,
    but an older or foreign file may be one) loads, and then fails when called
    with ``NOT_FOUND: Function ... not found``. Its first call here catches
    that, deletes the file, builds the program with ``rebuild`` and calls that
    instead; later calls go straight to the program.

    Args:
        compiled: The loaded executable.
        key: Its key in the store.
        rebuild: Builds the program from scratch (traces and compiles it).
    """

    def __init__(self, compiled: Any, key: str, rebuild: Any) -> None:
        self.compiled, self._key, self._rebuild = compiled, key, rebuild
        self._checked = False

    def __call__(self, *args: Any) -> Any:
        if self._checked:
            return self.compiled(*args)
        import jax

        try:
            out = self.compiled(*args)
        except jax.errors.JaxRuntimeError as error:
            if "NOT_FOUND" not in str(error):
                raise
            (folder() / f"{self._key}.pkl").unlink(missing_ok=True)
            self.compiled = self._rebuild()
            out = self.compiled(*args)
        self._checked = True
        return out

    def __getattr__(self, name: str) -> Any:  # the rest of the executable's interface
        return getattr(self.compiled, name)


def _evict(target_folder: Path) -> None:
    """Delete the least recently used programs while the folder holds over MAX_BYTES."""
    entries = []
    for path in target_folder.glob("*.pkl"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= MAX_BYTES:
            break
        path.unlink(missing_ok=True)
        total -= size
