"""Sampler programs on disk (bayes._programs): a new process loads them instead of tracing.

Each run is a fresh process with its own cache folder, as a user's second
``python model.py`` would be. What must hold: the second process traces no
chunk program and draws exactly what the first drew (and what a run without
the store draws); a change of the model's constants, in the program text or
in a closed-over array, is a different program; a damaged file is rebuilt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bayes
from bayes import _programs
from bayes.target import TargetSpec, as_target

# The prior scale is a literal of the model's code (PRIOR_SCALE, read from the
# environment when the module is built) and the prior means a closed-over array.
CHILD = r"""
import json, os, sys
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import threading

import bayes
import bayes.inference.mcmc as mcmc
from bayes import _programs

read = _programs._read
background = {"reads": 0}

def counting_read(key):
    if threading.current_thread() is not threading.main_thread():
        background["reads"] += 1  # prefetched from the last run's manifest
    return read(key)

_programs._read = counting_read

PRIOR_SCALE = float(os.environ["PRIOR_SCALE"])
PRIOR_LOC = np.full(3, float(os.environ["PRIOR_LOC"]))
traced = {"chunks": 0}
run_chunk = mcmc.run_chunk

def counting_run_chunk(*args, **kwargs):
    traced["chunks"] += 1  # called only while a chunk program is traced
    return run_chunk(*args, **kwargs)

mcmc.run_chunk = counting_run_chunk

def model(y):
    mu = numpyro.sample("mu", dist.Normal(jnp.asarray(PRIOR_LOC), PRIOR_SCALE))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

y = np.array([[0.5, -0.2, 1.0], [0.1, 0.3, 0.8]])
# dense_mass=True: the programs call LAPACK (Cholesky), registered lazily by jaxlib
idata = bayes.sample(model, {"y": y}, num_chains=2, num_warmup=60, num_samples=40,
                     seed=3, progress=False, dense_mass=True)
mu = idata.posterior["mu"].values
np.save(sys.argv[1], mu)
print(json.dumps({"chunks": traced["chunks"], "sd": float(mu.std()),
                  "prefetched": background["reads"]}))
"""


def _run(script: Path, out: Path, cache: Path, *, scale="1.0", loc="0.0", store=True) -> dict:
    env = {**os.environ, "BAYES_CACHE_DIR": str(cache), "PRIOR_SCALE": scale, "PRIOR_LOC": loc,
           "JAX_PLATFORMS": "cpu", "BAYES_PROGRESS": "0"}  # fmt: skip
    env.pop("BAYES_NO_PROGRAM_CACHE", None)
    if not store:
        env["BAYES_NO_PROGRAM_CACHE"] = "1"
    done = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_new_process_loads_programs_and_draws_the_same(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cache = tmp_path / "cache"
    first = _run(script, tmp_path / "a.npy", cache)
    assert first["chunks"] == 2  # warmup and sampling programs, traced and compiled
    stored = sorted((cache / "programs").glob("*.pkl"))
    assert len(stored) >= 2
    # the run's first program lists those that followed it
    (manifest,) = (cache / "programs" / "manifests").glob("*.json")
    listed = json.loads(manifest.read_text())
    assert len(listed) >= 2 and all((cache / "programs" / f"{k}.pkl").exists() for k in listed)
    assert first["prefetched"] == 0

    second = _run(script, tmp_path / "b.npy", cache)
    assert second["chunks"] == 0  # both loaded from disk, nothing traced
    assert second["prefetched"] == len(listed)  # in background threads, during the run
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.testing.assert_array_equal(a, b)
    without = _run(script, tmp_path / "c.npy", tmp_path / "cache-off", store=False)
    assert without["chunks"] == 2
    np.testing.assert_array_equal(a, np.load(tmp_path / "c.npy"))

    # a literal of the model changed: another program, and another posterior
    wider = _run(script, tmp_path / "d.npy", cache, scale="30.0")
    assert wider["chunks"] == 2
    assert wider["sd"] > 1.2 * first["sd"]
    # the values of a closed-over array changed: another program too
    shifted = _run(script, tmp_path / "e.npy", cache, loc="5.0")
    assert shifted["chunks"] == 2
    assert np.load(tmp_path / "e.npy").mean() > a.mean() + 0.5

    # damaged files are dropped and the programs built again, with the same draws
    for path in (cache / "programs").glob("*.pkl"):
        path.write_bytes(b"not a program")
    again = _run(script, tmp_path / "f.npy", cache)
    assert again["chunks"] == 2
    np.testing.assert_array_equal(a, np.load(tmp_path / "f.npy"))
    assert _run(script, tmp_path / "g.npy", cache)["chunks"] == 0


def test_keys_name_values_only():
    def logdensity(x):
        return -0.5 * (x**2).sum()

    target = as_target(logdensity, initial_position=np.zeros(3))
    other = TargetSpec(logdensity, "logdensity")
    assert _programs._stable(("a", 1, 2.5, None, (True,)), None) is not None
    assert _programs._stable((target.spec, "nuts"), target).startswith("(target:")
    # a spec of another target, or a function, cannot be named by value
    assert _programs._stable((other, "nuts"), target) is None
    assert _programs._stable((logdensity,), target) is None
    # the same log-density at other shapes is another target
    wider = as_target(logdensity, initial_position=np.zeros(4))
    assert _programs._target_fingerprint(wider) != _programs._target_fingerprint(target)


def test_store_is_off_without_compilation_cache(monkeypatch):
    monkeypatch.setenv("BAYES_NO_PROGRAM_CACHE", "1")
    assert _programs.folder() is None
    assert _programs.program_key("chunk", ("nuts",), (np.zeros(2),)) is None
    monkeypatch.delenv("BAYES_NO_PROGRAM_CACHE")
    assert _programs.folder() is not None  # the suite enables JAX's cache (conftest)
    assert bayes.config.cache_dir() is not None


@pytest.mark.slow
def test_key_covers_the_code_the_programs_are_traced_from(monkeypatch):
    """Every module of ours that runs while a sampler program is traced is in the key.

    Only those modules' source is part of a stored program's key
    (``_programs._SOURCES``); code of another module that ran during tracing
    could change a program without changing its key.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax._src import core

    roots = (Path(bayes.__file__).parent, Path(bayes.inference.__file__).parent)
    ran: set[Path] = set()

    def profile(frame, event, arg):
        if event == "call" and not isinstance(core.trace_ctx.trace, core.EvalTrace):
            path = Path(frame.f_code.co_filename)
            if any(root in path.parents for root in roots):
                ran.add(path)

    def model(y):  # a new function: no program of it is in memory yet
        loc = numpyro.sample("loc", dist.Normal(jnp.zeros(2), 1.0))
        scale = numpyro.sample("scale", dist.HalfNormal(1.0))
        numpyro.sample("y", dist.Normal(loc, scale), obs=y)

    data = {"y": np.array([[0.3, -0.1], [0.2, 0.4], [-0.5, 0.1]])}
    monkeypatch.setenv("BAYES_NO_PROGRAM_CACHE", "1")  # trace every program here
    sys.setprofile(profile)
    try:
        for method in ("chees",):  # its warmup runs NUTS chunks first; "hmc" shares them
            bayes.sample(model, data, method=method, num_chains=4, num_warmup=40,
                         num_samples=20, progress=False)  # fmt: skip
    finally:
        sys.setprofile(None)
    assert any(p.name == "chains.py" for p in ran)  # the chunk programs were traced here
    missing = ran - set(_programs._source_files())
    assert not missing, f"traced from modules outside _programs._SOURCES: {sorted(missing)}"


def test_store_keeps_only_loadable_programs_within_its_size(tmp_path, monkeypatch):
    import jax
    import jax.numpy as jnp

    monkeypatch.setattr(_programs, "folder", lambda: tmp_path)
    lowered = jax.jit(lambda x: jnp.sin(x) * 2).lower(jnp.ones(3))
    # through compile_and_store: a program that JAX loaded from its own cache
    # (the suite's is on) would not serialize completely
    compiled = _programs.compile_and_store("a" * 64, lowered, time.perf_counter() - 1.0)
    assert (tmp_path / f"{'a' * 64}.pkl").exists()
    loaded = _programs.load("a" * 64)
    np.testing.assert_array_equal(loaded(jnp.ones(3)), compiled(jnp.ones(3)))
    assert _programs.load("b" * 64) is None  # never stored
    # a custom call that a new process may not have registered: not stored
    monkeypatch.setattr(_programs, "_custom_calls", lambda c: ["some_plugin_kernel"])
    assert not _programs.store("c" * 64, compiled)
    assert not (tmp_path / f"{'c' * 64}.pkl").exists()
    monkeypatch.undo()
    # over the size limit, the least recently used go first
    monkeypatch.setattr(_programs, "folder", lambda: tmp_path)
    size = (tmp_path / f"{'a' * 64}.pkl").stat().st_size
    monkeypatch.setattr(_programs, "MAX_BYTES", 2 * size)
    for i, key in enumerate(("d" * 64, "e" * 64)):
        assert _programs.store(key, compiled)
        os.utime(tmp_path / f"{key}.pkl", (2e9 + i, 2e9 + i))  # newer than "a"
    _programs._evict(tmp_path)
    assert sorted(p.stem[0] for p in tmp_path.glob("*.pkl")) == ["d", "e"]


def test_a_loaded_program_missing_kernels_is_rebuilt_at_its_first_call(tmp_path, monkeypatch):
    import jax

    monkeypatch.setattr(_programs, "folder", lambda: tmp_path)
    stored = tmp_path / f"{'f' * 64}.pkl"
    stored.write_bytes(b"an executable without its kernels")

    def incomplete(*args):
        raise jax.errors.JaxRuntimeError("NOT_FOUND: Function fusion not found (type id: 1)")

    built = []

    def rebuild():
        built.append(True)
        return lambda x: x + 1

    program = _programs.Checked(incomplete, "f" * 64, rebuild)
    assert program(1) == 2 and program(2) == 3
    assert built == [True] and not stored.exists()

    def failing(*args):
        raise jax.errors.JaxRuntimeError("INVALID_ARGUMENT: something else")

    with pytest.raises(jax.errors.JaxRuntimeError, match="INVALID_ARGUMENT"):
        _programs.Checked(failing, "f" * 64, rebuild)(1)
