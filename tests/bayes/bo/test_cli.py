"""``bayes optimize`` / ``bayes report``: resume, reports, bad stores, SIGKILL durability."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayes.bo import Study
from bayes.bo.loop import ABANDONED_REASON
from bayes.cli import main

FAST = ["--num-restarts", "2", "--raw-samples", "32", "--no-progress"]

OBJECTIVE = """
import json, os, time

space = {"x": (0.0, 1.0), "y": (0.0, 1.0)}
optimum = 0.0


def objective(params):
    time.sleep(float(os.environ.get("BO_SLEEP", "0")))
    value = (params["x"] - 0.3) ** 2 + (params["y"] - 0.6) ** 2
    log = os.environ.get("BO_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps([params["x"], params["y"], value]) + "\\n")
    return value
"""


def test_optimize_resume_and_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "s.db"
    args = ["optimize", "--problem", "branin", "--store", str(store), "--n-initial", "7", *FAST]
    assert main([*args, "--budget", "5", "--batch", "2"]) == 0
    assert Study.load(store).counts()["complete"] == 5
    assert main([*args, "--budget", "7"]) == 0
    study = Study.load(store)
    assert study.counts()["complete"] == 7 and study.settings["optimum"] == pytest.approx(0.397887)
    assert [t.id for t in study.trials()] == list(range(1, 8))
    out = capsys.readouterr()
    assert "resuming" in out.err and "best trial" in out.out

    assert main(["report", str(store), "--out", str(tmp_path / "rep")]) == 0
    text = capsys.readouterr().out
    best = study.best()
    assert f"best trial {best.id}" in text
    for name in ("trials.csv", "best_so_far.png", "objective_vs_inputs.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    rows = (tmp_path / "rep" / "trials.csv").read_text().splitlines()
    assert len(rows) == 8 and rows[0].startswith("id,state,source,x0,x1,y")

    assert main(["report", str(store), "--json", "--out", str(tmp_path / "rep")]) == 0
    info = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert info["best"]["trial"] == best.id and info["counts"]["complete"] == 7


def test_bad_store_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
    assert main(["optimize", "--problem", "branin", "--store", str(foreign)]) == 2
    assert "another application" in capsys.readouterr().err
    assert main(["report", str(foreign)]) == 2
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == digest

    store = tmp_path / "s.db"
    assert main(["optimize", "--problem", "nope", "--store", str(store)]) == 2
    assert "unknown problem 'nope'" in capsys.readouterr().err
    assert main(["optimize", "--store", str(store)]) == 2
    obj = tmp_path / "obj.py"
    obj.write_text(OBJECTIVE)
    ok = ["optimize", str(obj), "--store", str(store), "--budget", "2", *FAST]
    assert main(ok) == 0
    other = ["optimize", "--problem", "branin", "--store", str(store), *FAST]
    assert main(other) == 2
    assert "another search space" in capsys.readouterr().err
    assert main([*ok[: -len(FAST)], "--surrogate", "nope"]) == 2
    assert "unknown surrogate" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def _finished(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        con = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(
                "SELECT COUNT(*) FROM trials WHERE state IN ('complete', 'failed')"
            ).fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return 0


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    obj, store, log = tmp_path / "obj.py", tmp_path / "s.db", tmp_path / "evals.jsonl"
    obj.write_text(OBJECTIVE)
    # Room for 10 kills: each run makes >= 1 evaluation before its kill and, on a
    # fast machine, a few more; a small budget could finish before kill 10.
    budget = 44
    cmd = [sys.executable, "-m", "bayes", "optimize", str(obj), "--store", str(store),
           "--budget", str(budget), "--batch", "2", "--n-initial", "14", *FAST]  # fmt: skip
    env = {**os.environ, "BO_LOG": str(log), "BO_SLEEP": "0.15", "BAYES_PROGRESS": "0"}
    rng = random.Random(6)
    kills = 0
    while kills < 10:
        before = _finished(store)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Kill at a random moment after this run has made progress (evaluating, fitting,
        # committing), so every restart moves the study forward.
        while proc.poll() is None and _finished(store) <= before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is not None:
            pytest.fail(f"optimize ended before kill {kills + 1}: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]

    study = Study.load(store)
    trials = study.trials()
    counts = study.counts()
    assert counts["complete"] + counts["failed"] == budget
    assert counts["pending"] == counts["running"] == 0
    assert [t.id for t in trials] == list(range(1, len(trials) + 1))
    abandoned = [t for t in trials if t.state == "abandoned"]
    assert abandoned, "no trial was running at any of the 10 kills"
    assert all(t.error == ABANDONED_REASON and t.outcomes is None for t in abandoned)
    evaluations = [tuple(json.loads(line)) for line in log.read_text().splitlines()]

    def at(key, states):
        return sum((t.params["x"], t.params["y"]) == key for t in trials if t.state in states)

    for t in study.trials(["complete"]):
        key = (t.params["x"], t.params["y"])
        matches = [e for e in evaluations if e[:2] == key]
        # The recorded value is that evaluation's value, and no complete trial was
        # evaluated twice. An abandoned trial may have been evaluated before its kill;
        # its value was lost, so the acquisition may propose the same point again (a
        # box corner, say), which makes one more evaluation at that point legitimate.
        assert matches and all(e[2] == t.outcomes["y"] for e in matches)
        assert len(matches) <= at(key, ("complete",)) + at(key, ("abandoned",))
    assert len(evaluations) >= counts["complete"]
