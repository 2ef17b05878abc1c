"""The study store: one SQLite file in WAL mode, one transaction per state change.

Tables:

- ``meta(key, value)``: JSON values; ``format`` is ``"bayes-bo-study"`` and
  marks the file as ours, ``format_version`` its schema version, and the study
  settings (space, objectives, surrogate, acquisition, seed, ...).
- ``trials``: one row per suggested point with its state, parameters, unit-cube
  coordinates, outcomes, error, worker and timings.

Every state change (new trials, a trial started, told, abandoned) commits on
its own with ``synchronous=FULL``, so a process killed at any moment leaves
the file at the last committed change and never half-way through one. A file
that is not a study (another SQLite database, a corrupt or non-SQLite file)
is inspected read-only and rejected with :class:`StoreError`; it is never
written to.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "STATES", "Store", "StoreError", "Trial"]

FORMAT = "bayes-bo-study"
FORMAT_VERSION = 1
#: Trial states. ``pending``: suggested, not started; ``running``: handed to an
#: executor; ``complete``/``failed``: finished; ``abandoned``: the driver
#: stopped (or died) while it was pending or running, so its result is unknown.
STATES = ("pending", "running", "complete", "failed", "abandoned")
FINAL_STATES = ("complete", "failed", "abandoned")
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL CHECK (state IN ('pending','running','complete','failed','abandoned')),
    source TEXT NOT NULL,
    params TEXT NOT NULL,
    x TEXT NOT NULL,
    outcomes TEXT,
    error TEXT,
    worker TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX trials_state ON trials(state);
"""


class StoreError(ValueError):
    """A store file that cannot be used: foreign, corrupt, missing or already existing."""


@dataclass
class Trial:
    """One suggested point and what became of it.

    Attributes:
        id: Sequence number in the study (1, 2, ...).
        state: One of :data:`STATES`.
        params: Parameter dict passed to the objective.
        x: Unit-cube coordinates, length ``d``.
        source: ``"sobol"`` (initial design), ``"model"`` (acquisition) or ``"manual"``.
        outcomes: Outcome name -> value once complete.
        error: Why it failed or was abandoned.
        worker: Where it ran (``host:pid:thread`` or the Dask worker address).
        created, started, finished: UNIX times.
    """

    id: int
    state: str
    params: dict[str, Any]
    x: list[float]
    source: str = "model"
    outcomes: dict[str, float] | None = None
    error: str | None = None
    worker: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (``None`` while unfinished)."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {value!r}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row_to_trial(row: sqlite3.Row) -> Trial:
    return Trial(
        id=row["id"], state=row["state"], source=row["source"],
        params=json.loads(row["params"]), x=json.loads(row["x"]),
        outcomes=json.loads(row["outcomes"]) if row["outcomes"] else None,
        error=row["error"], worker=row["worker"], created=row["created"],
        started=row["started"], finished=row["finished"],
    )  # fmt: skip


def _inspect(path: Path) -> None:
    """Raise StoreError unless ``path`` is a study store; reads only."""
    if not path.is_file():
        raise StoreError(f"{str(path)!r} is not a file")
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if not head:
        raise StoreError(f"{str(path)!r} is an empty file, not a bayes study store")
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{str(path)!r} is not a bayes study store (not an SQLite database)")
    # immutable: no locks and no -wal/-shm files, so nothing next to a foreign file is
    # touched; the main file of a study always holds the meta table (written at creation).
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {r[0] for r in rows}
            if not {"meta", "trials"} <= tables:
                raise StoreError(
                    f"{str(path)!r} is an SQLite database of another application, "
                    "not a bayes study store"
                )
            fmt = con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if fmt is None or json.loads(fmt[0]) != FORMAT:
                raise StoreError(f"{str(path)!r} is not a bayes study store (no format marker)")
            version = con.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
            if version is None or json.loads(version[0]) > FORMAT_VERSION:
                raise StoreError(f"{str(path)!r} was written by a newer bayes (format {version})")
            check = con.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"{str(path)!r} is a corrupt study store: {check}")
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{str(path)!r} is corrupt or not a bayes study store ({err})") from None


class Store:
    """A study store file. Use :meth:`create` or :meth:`open`, not the constructor."""

    def __init__(self, path: Path, con: sqlite3.Connection):
        self.path = path
        self._con = con
        self._lock = threading.RLock()

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        con = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed state change survives power loss, not only a killed process.
        con.execute("PRAGMA synchronous=FULL")
        return con

    @classmethod
    def create(cls, path: str | os.PathLike[str], meta: Mapping[str, Any]) -> Store:
        """Create a new store file with the study settings ``meta``.

        Raises:
            StoreError: If ``path`` already exists or its folder does not.
        """
        path = Path(path)
        if path.exists():
            raise StoreError(f"{str(path)!r} already exists; use Study.load to resume it")
        if not path.parent.is_dir():
            raise StoreError(f"folder {str(path.parent)!r} does not exist")
        tmp = path.with_name(path.name + ".creating")
        for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            stale.unlink(missing_ok=True)
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
            values = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
            con.execute("BEGIN")
            con.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [(k, _dumps(v)) for k, v in values.items()],
            )
            con.execute("COMMIT")
        finally:
            con.close()
        # A killed create leaves only the .creating file, never a half-made store.
        os.replace(tmp, path)
        return cls(path, cls._connect(path))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing store, after checking read-only that it is one.

        Raises:
            StoreError: Missing, empty, corrupt or foreign file (left unmodified).
        """
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no study store at {str(path)!r}")
        _inspect(path)
        return cls(path, cls._connect(path))

    def close(self) -> None:
        """Close the connection (the file stays consistent either way)."""
        with self._lock:
            self._con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    # -- meta ------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """All settings as a dict."""
        with self._lock:
            rows = self._con.execute("SELECT key, value FROM meta").fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def set_meta(self, **values: Any) -> None:
        """Update settings in one transaction."""
        with self.transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [(k, _dumps(v)) for k, v in values.items()],
            )

    # -- trials ----------------------------------------------------------------
    def add_trials(
        self, points: Sequence[tuple[dict[str, Any], Sequence[float], str]]
    ) -> list[Trial]:
        """Insert ``pending`` trials for ``(params, x, source)`` triples in one transaction."""
        now = time.time()
        ids = []
        with self.transaction() as con:
            for params, x, source in points:
                cur = con.execute(
                    "INSERT INTO trials(state, source, params, x, created) "
                    "VALUES ('pending', ?, ?, ?, ?)",
                    (source, _dumps(params), _dumps([float(v) for v in x]), now),
                )
                ids.append(cur.lastrowid)
        return [self.trial(i) for i in ids]

    def trial(self, trial_id: int) -> Trial:
        """The current record of one trial."""
        with self._lock:
            row = self._con.execute("SELECT * FROM trials WHERE id=?", (trial_id,)).fetchone()
        if row is None:
            raise KeyError(f"no trial {trial_id} in {self.path}")
        return _row_to_trial(row)

    def trials(self, states: Sequence[str] | None = None) -> list[Trial]:
        """Trials in creation order, optionally only those in ``states``."""
        with self._lock:
            if states is None:
                rows = self._con.execute("SELECT * FROM trials ORDER BY id").fetchall()
            else:
                marks = ",".join("?" * len(states))
                rows = self._con.execute(
                    f"SELECT * FROM trials WHERE state IN ({marks}) ORDER BY id", tuple(states)
                ).fetchall()
        return [_row_to_trial(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of trials in each state."""
        with self._lock:
            rows = self._con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({r[0]: r[1] for r in rows})
        return out

    def mark_running(self, trial_id: int, *, worker: str | None = None) -> None:
        """``pending -> running`` (one transaction)."""
        with self.transaction() as con:
            cur = con.execute(
                "UPDATE trials SET state='running', started=?, worker=COALESCE(?, worker) "
                "WHERE id=? AND state='pending'",
                (time.time(), worker, trial_id),
            )
            if cur.rowcount != 1:
                raise StoreError(f"trial {trial_id} is not pending")

    def finish(
        self,
        trial_id: int,
        state: str,
        *,
        outcomes: Mapping[str, float] | None = None,
        error: str | None = None,
        worker: str | None = None,
        started: float | None = None,
        finished: float | None = None,
    ) -> Trial:
        """Move an unfinished trial to a final state (one transaction).

        Raises:
            StoreError: If the trial is already final, so nothing is recorded twice.
        """
        if state not in FINAL_STATES:
            raise ValueError(f"final state expected, got {state!r}")
        payload = _dumps({k: _clean(float(v)) for k, v in outcomes.items()}) if outcomes else None
        with self.transaction() as con:
            cur = con.execute(
                "UPDATE trials SET state=?, outcomes=?, error=?, worker=COALESCE(?, worker), "
                "started=COALESCE(?, started), finished=? "
                "WHERE id=? AND state IN ('pending','running')",
                (state, payload, error, worker, started, finished or time.time(), trial_id),
            )
            if cur.rowcount != 1:
                raise StoreError(f"trial {trial_id} is already finished; it is not recorded twice")
        return self.trial(trial_id)

    def abandon_unfinished(self, reason: str) -> list[int]:
        """Mark every ``pending``/``running`` trial ``abandoned`` in one transaction."""
        with self.transaction() as con:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT id FROM trials WHERE state IN ('pending','running') ORDER BY id"
                )
            ]
            con.execute(
                "UPDATE trials SET state='abandoned', error=?, finished=? "
                "WHERE state IN ('pending','running')",
                (reason, time.time()),
            )
        return ids
