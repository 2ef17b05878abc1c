"""``optimize``: the durable, parallel BO loop.

Each round fills the free worker slots: the study proposes points (with the
running ones as pending points), each is marked ``running`` in the store and
submitted to the executor; the loop then waits for the first evaluation to
finish, records it, and repeats until the budget is reached.

Durability: every state change is its own committed transaction, so after a
crash the store holds each finished evaluation exactly once. When
``optimize`` starts on an existing study, trials left ``pending`` or
``running`` by a driver that died are marked ``abandoned`` (they are not
re-queued; their points stay in the record with the reason) and the loop
continues until the budget of finished evaluations is met. A lock file next
to the store (``<store>.lock``, released by the OS when the process dies)
keeps two drivers from running the same study.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bayes.bo.store import StoreError
from bayes.bo.study import Study

__all__ = ["ABANDONED_REASON", "optimize"]

ABANDONED_REASON = "abandoned: the optimizing process stopped before this evaluation finished"


def _evaluate(objective: Callable[[dict[str, Any]], Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation on a worker; errors come back as text, never raised."""
    started = time.time()
    try:
        from distributed import get_worker

        worker = get_worker().address
    except Exception:
        worker = f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
    try:
        value, error = objective(params), None
    except Exception as err:
        value, error = None, f"{type(err).__name__}: {err}"
    return {"value": value, "error": error, "worker": worker, "started": started,
            "finished": time.time()}  # fmt: skip


@contextlib.contextmanager
def _driver_lock(path: Path) -> Iterator[None]:
    import fcntl

    fh = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(
                f"another process is optimizing {str(path)!r} (lock {path}.lock is held)"
            ) from None
        yield
    finally:
        fh.close()


def _as_executor(executor: Any) -> Any:
    # A dask.distributed Client is not a concurrent.futures.Executor itself.
    if type(executor).__name__ == "Client" and hasattr(executor, "get_executor"):
        return executor.get_executor(pure=False)
    return executor


def optimize(
    objective: Callable[[dict[str, Any]], Any],
    study: Study,
    budget: int | None = None,
    *,
    batch_size: int = 1,
    executor: Any = None,
    timeout: float | None = None,
    time_budget: float | None = None,
    max_failures: int | None = None,
    progress: bool = True,
    callback: Callable[[Study, Any], None] | None = None,
) -> Study:
    """Optimize ``objective`` until the study has ``budget`` finished evaluations.

    Args:
        objective: ``params -> float | dict`` (see :meth:`Study.tell`). It must
            be picklable for process pools and Dask.
        study: The study; resumed if it already has trials.
        budget: Total number of finished evaluations (complete + failed)
            the study should reach; abandoned trials do not count.
        batch_size: Evaluations kept running at once (``q`` of a fresh batch).
        executor: A ``concurrent.futures.Executor`` or a
            ``dask.distributed.Client``; default a thread pool of ``batch_size``.
        timeout: Seconds after which a running evaluation is recorded as
            failed (its late result is ignored; a thread cannot be stopped,
            so the slot stays busy until it returns).
        time_budget: Stop proposing new points after this many seconds of
            wall time, then wait for the running ones.
        max_failures: Stop proposing after this many failures in this call
            (default: no limit; failed points are never proposed again).
        progress: Show a progress bar with the best value, running trials
            and failures.
        callback: Called as ``callback(study, trial)`` after each finished trial.

    Returns:
        The study.

    Raises:
        ValueError: Neither ``budget`` nor ``time_budget`` given, or ``batch_size < 1``.
        StoreError: Another process is optimizing the same study.
    """
    if budget is None and time_budget is None:
        raise ValueError("give a budget (number of evaluations) or a time_budget (seconds)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with _driver_lock(study.path):
        study.abandon_unfinished(ABANDONED_REASON)
        own = executor is None
        pool = cf.ThreadPoolExecutor(batch_size, "bayes-bo") if own else _as_executor(executor)
        try:
            _run(objective, study, budget, batch_size, pool, timeout, time_budget,
                 max_failures, progress, callback)  # fmt: skip
        finally:
            study.abandon_unfinished(ABANDONED_REASON)
            if own:
                pool.shutdown(wait=False, cancel_futures=True)
    return study


def _best_text(study: Study) -> str:
    if len(study.objectives) > 1:
        return f"{len(study.pareto())} Pareto"
    best = study.best()
    return "-" if best is None else f"{best.outcomes[study.objectives[0]['name']]:.5g}"


def _run(objective, study, budget, batch_size, pool, timeout, time_budget, max_failures,
         progress, callback) -> None:  # fmt: skip
    from bayes._progress import progress_bar

    t_start = time.monotonic()
    counts = study.counts()
    failed_at_start = counts["failed"]
    finished = counts["complete"] + counts["failed"]
    running: dict[Any, tuple[Any, float]] = {}
    total = budget if budget is not None else None
    with progress_bar(total=total, desc="bayes optimize", enabled=progress) as bar:
        bar.update(min(finished, total or finished))
        while True:
            counts = study.counts()
            finished = counts["complete"] + counts["failed"]
            out_of_time = time_budget is not None and time.monotonic() - t_start >= time_budget
            new_failures = counts["failed"] - failed_at_start
            too_many = max_failures is not None and new_failures >= max_failures
            free = batch_size - len(running)
            if budget is not None:
                free = min(free, budget - finished - len(running))
            if free > 0 and not out_of_time and not too_many:
                for trial in study.ask(free):
                    study.start(trial)
                    future = pool.submit(_evaluate, objective, trial.params)
                    running[future] = (trial, time.monotonic())
            bar.set_postfix_str(
                f"best {_best_text(study)}, running {len(running)}, failed {counts['failed']}"
            )
            if not running:
                return
            wait_s = None
            if timeout is not None:
                oldest = min(t0 for _, t0 in running.values())
                wait_s = max(0.0, oldest + timeout - time.monotonic())
            if time_budget is not None and not out_of_time:
                left = max(0.0, t_start + time_budget - time.monotonic())
                wait_s = left if wait_s is None else min(wait_s, left)
            done, _ = cf.wait(list(running), timeout=wait_s, return_when=cf.FIRST_COMPLETED)
            now = time.monotonic()
            for future in list(running):
                trial, t0 = running[future]
                if future in done:
                    del running[future]
                    record = _result(future)
                    told = study.tell(
                        trial, record["value"], failure=record["error"],
                        worker=record["worker"], started=record["started"],
                        finished=record["finished"],
                    )  # fmt: skip
                elif timeout is not None and now - t0 >= timeout:
                    del running[future]
                    future.cancel()
                    told = study.tell(trial, failure=f"timed out after {timeout:g} s")
                else:
                    continue
                bar.update(1)
                if callback is not None:
                    callback(study, told)


def _result(future: Any) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as err:  # the executor itself failed (worker lost, pickling error)
        return {"value": None, "error": f"{type(err).__name__}: {err}", "worker": None,
                "started": None, "finished": None}  # fmt: skip
