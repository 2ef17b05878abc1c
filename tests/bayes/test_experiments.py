"""The experiments registry in-process: registration, results.json, JSON conversion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bayes import experiments as ex


def test_register_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "_REGISTRY", dict(ex.registry()))

    @ex.experiment("test-echo", "echo the seed")
    def echo(ctx: ex.RunContext) -> dict:
        seen = list(ctx.track(range(3), total=3))
        return {"seed": ctx.seed, "quick": ctx.quick, "seen": seen, "arr": np.arange(2)}

    record = ex.run_experiment("test-echo", quick=True, seed=7, out=tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == record
    assert record["results"] == {"seed": 7, "quick": True, "seen": [0, 1, 2], "arr": [0, 1]}


def test_duplicate_name_from_other_module_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "_REGISTRY", dict(ex.registry()))
    fake = lambda ctx: {}  # noqa: E731
    fake.__module__ = "somewhere.else"
    with pytest.raises(ValueError, match="already registered"):
        ex.experiment("conjugate-normal", "dup")(fake)


def test_unknown_experiment() -> None:
    with pytest.raises(ex.ExperimentError, match="unknown experiment"):
        ex.run_experiment("does-not-exist")


def test_to_jsonable() -> None:
    value = {"a": np.float32(1.5), "b": (1, np.int64(2)), "c": math.nan, "d": Path("x")}
    assert ex.to_jsonable(value) == {"a": 1.5, "b": [1, 2], "c": None, "d": "x"}


class _Interrupted(Exception):
    pass


def _jobs_experiment(monkeypatch: pytest.MonkeyPatch, name: str = "test-jobs"):
    """Register an experiment of three cached jobs; ``plan`` steers it, ``calls`` logs fn calls."""
    monkeypatch.setattr(ex, "_REGISTRY", dict(ex.registry()))
    plan = {"settings": {"n": 3}, "stop_after": None}
    calls: list[str] = []

    @ex.experiment(name, "three seeded jobs")
    def jobs(ctx: ex.RunContext) -> dict:
        rows = []
        for i in range(3):

            def job(i: int = i) -> dict:
                calls.append(f"job{i}")
                rng = np.random.default_rng([ctx.seed, i, plan["settings"]["n"]])
                return {"draw": rng.standard_normal(2), "nan": math.nan, "pair": (i, i)}

            rows.append(ctx.cached(f"job{i}", job, settings=plan["settings"]))
            if plan["stop_after"] == i + 1:
                raise _Interrupted
        return {"rows": rows, "sum": sum(r["draw"][0] for r in rows)}

    return plan, calls


def test_cached_jobs_resume_only_with_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, calls = _jobs_experiment(monkeypatch)
    reference = ex.run_experiment("test-jobs", seed=1, out=tmp_path / "ref", progress=False)
    assert reference["jobs"] == {"total": 3, "reused": 0}
    assert not (tmp_path / "ref" / ex.PARTIAL_DIR).exists()  # removed on success
    row = reference["results"]["rows"][0]
    assert row["nan"] is None and row["pair"] == [0, 0]  # strict JSON in results.json

    def interrupted_run(**kw) -> None:
        plan["stop_after"] = 2
        calls.clear()
        with pytest.raises(_Interrupted):
            ex.run_experiment("test-jobs", out=tmp_path / "run", progress=False, **kw)
        plan["stop_after"] = None

    def rerun(**kw) -> dict:
        calls.clear()
        return ex.run_experiment("test-jobs", out=tmp_path / "run", progress=False, **kw)

    interrupted_run(seed=1)
    assert sorted(p.name for p in (tmp_path / "run" / ex.PARTIAL_DIR).iterdir()) == [
        "job0.json",
        "job1.json",
    ]
    resumed = rerun(seed=1)
    assert calls == ["job2"]
    assert resumed["jobs"] == {"total": 3, "reused": 2}
    assert resumed["results"] == reference["results"]
    assert not (tmp_path / "run" / ex.PARTIAL_DIR).exists()

    # another seed, quick mode, job settings or experiment must recompute every job
    for change in ("seed", "quick", "settings", "resume"):
        interrupted_run(seed=1)
        if change == "settings":
            plan["settings"] = {"n": 4}
        kw = {"seed": 2 if change == "seed" else 1, "quick": change == "quick"}
        if change == "resume":
            kw["resume"] = False
        record = rerun(**kw)
        plan["settings"] = {"n": 3}
        assert calls == ["job0", "job1", "job2"], change
        assert record["jobs"] == {"total": 3, "reused": 0}, change
        if change in ("quick", "resume"):  # same seed and job settings: same numbers
            assert record["results"] == reference["results"], change
        else:
            assert record["results"]["sum"] != reference["results"]["sum"], change
    interrupted_run(seed=1)
    _jobs_experiment(monkeypatch, name="test-other-jobs")
    record = ex.run_experiment("test-other-jobs", seed=1, out=tmp_path / "run", progress=False)
    assert record["jobs"] == {"total": 3, "reused": 0}


def test_cached_rejects_bad_keys_and_results(tmp_path: Path) -> None:
    ctx = ex.RunContext(quick=True, seed=0, out=tmp_path, name="x")
    with pytest.raises(ValueError, match="must be 1-128 letters"):
        ctx.cached("../up", dict)
    assert ctx.cached("a", lambda: {"v": 1}) == {"v": 1}
    with pytest.raises(ValueError, match="used twice"):
        ctx.cached("a", lambda: {"v": 1})
    with pytest.raises(ValueError, match="not JSON-able"):
        ctx.cached("b", lambda: {"v": object()})
    with pytest.raises(ValueError, match="not a dict"):
        ctx.cached("c", lambda: [1])
    # a torn or foreign file in the partial folder is recomputed, not trusted
    (tmp_path / ex.PARTIAL_DIR / "d.json").write_text('{"digest": ')
    assert ctx.cached("d", lambda: {"v": 2}) == {"v": 2}
    assert ctx.jobs_reused == 0


_KILLABLE = """
import os, sys, time
from pathlib import Path

import numpy as np

from bayes import experiments as ex
from bayes.cli import main

out, calls, stop_after = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])


@ex.experiment("test-killable", "five seeded jobs; can hang after some to be killed")
def killable(ctx):
    rows = []
    for i in range(5):

        def job(i=i):
            with calls.open("a") as f:
                f.write(f"{i}\\n")
            return {"draw": np.random.default_rng([ctx.seed, i]).standard_normal(3)}

        rows.append(ctx.cached(f"job{i}", job, settings={"size": 3}))
        if i + 1 == stop_after:
            (out / "hanging").write_text("")
            time.sleep(120)
    return {"total": float(sum(sum(r["draw"]) for r in rows)), "rows": rows}


sys.exit(main(["run", "test-killable", "--seed", "4", "--out", str(out), "--no-progress"]))
"""


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    """A run killed with SIGKILL mid-job loses only that job; the rerun reads the rest back."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE)
    env = {**os.environ, "BAYES_NO_COMPILATION_CACHE": "1"}

    def start(out: Path, calls: Path, stop_after: int) -> subprocess.Popen:
        cmd = [sys.executable, str(script), str(out), str(calls), str(stop_after)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    killed_out = tmp_path / "killed"
    killed_out.mkdir()
    proc = start(killed_out, tmp_path / "calls_killed", 3)
    deadline = time.monotonic() + 60
    while not (killed_out / "hanging").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_out / "results.json").exists()

    resumed = start(killed_out, tmp_path / "calls_resumed", 0)
    stdout, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr
    assert f"resumed: 3 of 5 jobs from {killed_out}/.partial" in stdout.decode()
    assert (tmp_path / "calls_resumed").read_text().split() == ["3", "4"]

    fresh_out = tmp_path / "fresh"
    fresh_out.mkdir()
    fresh = start(fresh_out, tmp_path / "calls_fresh", 0)
    stdout, stderr = fresh.communicate(timeout=60)
    assert fresh.returncode == 0, stderr
    assert "resumed" not in stdout.decode()

    got = json.loads((killed_out / "results.json").read_text())
    want = json.loads((fresh_out / "results.json").read_text())
    assert got["results"] == want["results"]
    assert got["jobs"] == {"total": 5, "reused": 3} and want["jobs"]["reused"] == 0
    assert not (killed_out / ex.PARTIAL_DIR).exists()
