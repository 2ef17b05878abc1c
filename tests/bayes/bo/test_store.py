"""The SQLite store: round trips, single recording, foreign and corrupt files left untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from bayes.bo.store import Store, StoreError


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_round_trip_and_single_recording(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.create(path, {"space": [], "seed": 3})
    (t1, t2) = store.add_trials([({"x": 0.1}, [0.1], "sobol"), ({"x": 0.7}, [0.7], "model")])
    assert (t1.state, t2.state) == ("pending", "pending")
    store.mark_running(t1.id, worker="w1")
    store.finish(t1.id, "complete", outcomes={"y": 1.5})
    with pytest.raises(StoreError, match="already finished"):
        store.finish(t1.id, "failed", error="late")
    assert store.abandon_unfinished("driver died") == [t2.id]
    store.close()

    reopened = Store.open(path)
    assert reopened.meta()["seed"] == 3
    assert reopened.meta()["format"] == "bayes-bo-study"
    r1, r2 = reopened.trials()
    assert (r1.state, r1.outcomes, r1.worker, r1.source) == ("complete", {"y": 1.5}, "w1", "sobol")
    assert r1.duration is not None and r1.duration >= 0
    assert (r2.state, r2.error) == ("abandoned", "driver died")
    assert reopened.counts()["complete"] == 1
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_create_refuses_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_text("keep me")
    with pytest.raises(StoreError, match="already exists"):
        Store.create(path, {})
    assert path.read_text() == "keep me"


def _foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.execute("INSERT INTO customers VALUES (1, 'ada')")
    con.commit()
    con.close()


def _corrupt_study(path: Path) -> None:
    Store.create(path, {"space": []}).close()
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # keep the header, destroy the pages
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("x,y\n1,2\n"), "not an SQLite database"),
        (_foreign_sqlite, "another application"),
        (_corrupt_study, "corrupt"),
    ],
    ids=["empty", "text", "foreign-sqlite", "corrupt"],
)
def test_bad_files_rejected_and_unmodified(tmp_path: Path, make, match: str) -> None:
    path = tmp_path / "s.db"
    make(path)
    before = _digest(path)
    with pytest.raises(StoreError, match=match):
        Store.open(path)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
