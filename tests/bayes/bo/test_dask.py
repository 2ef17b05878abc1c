"""optimize() on a real Dask LocalCluster of worker processes (loopback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bayes.bo import Study, optimize


def test_optimize_on_a_local_dask_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")

    def objective(params):  # a closure: cloudpickle ships it by value to the workers
        import os as _os

        return {"y": (params["x"] - 0.25) ** 2, "pid": float(_os.getpid())}

    study = Study.create(tmp_path / "s.db", {"x": (0.0, 1.0)}, objectives="y", n_initial=6,
                         constraints={"pid": (">=", 0.0)})  # fmt: skip
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        addresses = set(client.scheduler_info()["workers"])
        optimize(objective, study, budget=6, batch_size=2, executor=client, progress=False)
    trials = study.trials()
    assert [t.state for t in trials] == ["complete"] * 6
    for t in trials:
        assert t.outcomes["y"] == pytest.approx((t.params["x"] - 0.25) ** 2)
    # Evaluations ran in the worker processes, not in this one, and both workers took part.
    pids = {t.outcomes["pid"] for t in trials}
    assert float(os.getpid()) not in pids
    assert {t.worker for t in trials} == addresses and len(addresses) == 2


def test_cli_optimize_with_scheduler_address(tmp_path: Path) -> None:
    """``bayes optimize --scheduler ADDRESS`` evaluates on the cluster's worker processes."""
    distributed = pytest.importorskip("distributed")
    from bayes.cli import main

    store = tmp_path / "cli.db"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        addresses = set(client.scheduler_info()["workers"])
        code = main(["optimize", "--problem", "branin", "--store", str(store), "--budget", "6",
                     "--n-initial", "6", "--batch", "2", "--scheduler", cluster.scheduler_address,
                     "--no-progress"])  # fmt: skip
    assert code == 0
    study = Study.load(store)
    trials = study.trials()
    assert [t.state for t in trials] == ["complete"] * 6
    assert {t.worker for t in trials} <= addresses  # every evaluation ran on a cluster worker
    study.close()
