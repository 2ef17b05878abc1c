"""The registered ``bo-gp`` experiment in quick mode: same design, GP beats Sobol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bayes.experiments import registry, run_experiment


def test_bo_gp_quick(tmp_path: Path) -> None:
    assert "bo-gp" in registry()
    record = run_experiment("bo-gp", quick=True, out=tmp_path, progress=False)
    assert json.loads((tmp_path / "results.json").read_text()) == record
    assert (tmp_path / "bo_gp_regret.png").stat().st_size > 0
    branin = record["results"]["branin"]
    gp, sobol = branin["gp"], branin["sobol"]
    n_init = branin["n_initial"]
    # Same initial design for both methods, then the GP's regret falls below Sobol's.
    assert np.allclose(gp["regret_mean"][:n_init], sobol["regret_mean"][:n_init])
    assert len(gp["regret_mean"]) == branin["budget"]
    assert np.all(np.diff(gp["regret_mean"]) <= 1e-12)  # best-so-far never gets worse
    assert gp["final_regret_mean"] < sobol["final_regret_mean"]
    assert branin["gp_beats_sobol"] and record["results"]["gp_beats_sobol_everywhere"]
