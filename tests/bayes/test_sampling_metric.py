"""``dense_mass="auto"``: a chain keeps a dense mass matrix only where the target is correlated."""

from __future__ import annotations

import pickle
from pathlib import Path

import arviz as az
import jax.numpy as jnp
import numpy as np
import pytest

import bayes
from bayes import sampling

RHO = 0.95
COV = np.array([[1.0, RHO, 0.0], [RHO, 1.0, 0.0], [0.0, 0.0, 4.0]])
PRECISION = np.linalg.inv(COV)  # no LAPACK call per gradient
SCALES = np.exp(np.linspace(-2.0, 2.0, 8))
START = {"x": jnp.zeros(8)}
RUN = dict(num_chains=4, num_warmup=400, num_samples=500, progress=False, seed=3)


def correlated(p):
    return -0.5 * p["x"] @ (PRECISION @ p["x"])


def independent(p):
    return -0.5 * jnp.sum((p["x"] / SCALES) ** 2)


def _draws(idata):
    return np.asarray(idata.posterior["x"]).reshape(-1, idata.posterior["x"].shape[-1])


def test_auto_chooses_dense_for_a_correlated_target_and_samples_it_right():
    auto = bayes.sample(correlated, initial_position={"x": jnp.zeros(3)}, **RUN)
    diag = bayes.sample(correlated, initial_position={"x": jnp.zeros(3)}, dense_mass=False, **RUN)
    assert json_list(auto, "mass_matrix") == ["dense"] * 4
    assert json_list(diag, "mass_matrix") == ["diagonal"] * 4
    # the metric removes the correlation: much shorter trajectories for the same draws
    steps_auto = float(auto.sample_stats["n_steps"].mean())
    steps_diag = float(diag.sample_stats["n_steps"].mean())
    assert steps_auto < 0.5 * steps_diag, (steps_auto, steps_diag)
    x = _draws(auto)
    ess = az.ess(auto.posterior)["x"].values
    np.testing.assert_array_less(np.abs(x.mean(0)), 5 * np.sqrt(np.diag(COV) / ess))
    r = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
    assert abs(r - RHO) < 5 * (1 - RHO**2) / np.sqrt(ess[:2].min())


def test_auto_keeps_a_diagonal_metric_and_samples_with_it(tmp_path: Path):
    ckpt = tmp_path / "run.ckpt"
    idata = bayes.sample(independent, initial_position=START, checkpoint=ckpt, **RUN)
    assert json_list(idata, "mass_matrix") == ["diagonal"] * 4
    with open(ckpt, "rb") as f:
        states = pickle.load(f)["states"]
    # sampling ran BlackJAX's diagonal metric, not a dense matrix with zeros off the diagonal
    assert np.shape(states.tuning.inverse_mass_matrix) == (4, 8)
    x = _draws(idata)
    ess = az.ess(idata.posterior)["x"].values
    # variance of the sample variance of a normal: 2 s^4 / n
    np.testing.assert_array_less(np.abs(x.var(0) / SCALES**2 - 1), 5 * np.sqrt(2 / ess))


def test_resume_at_the_end_of_an_auto_warmup_reproduces_the_run(tmp_path: Path, monkeypatch):
    ckpt = tmp_path / "run.ckpt"
    ref = bayes.sample(independent, initial_position=START, chunk_size=100, **RUN)

    def stop_at_warmup_end(progress):
        if progress["t"] == RUN["num_warmup"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(sampling, "_after_chunk", stop_at_warmup_end)
    with pytest.raises(KeyboardInterrupt):  # no draws yet: nothing to return
        bayes.sample(independent, initial_position=START, chunk_size=100,
                     checkpoint=ckpt, **RUN)  # fmt: skip
    monkeypatch.undo()
    with open(ckpt, "rb") as f:
        saved = pickle.load(f)
    assert saved["t"] == RUN["num_warmup"]
    assert np.shape(saved["states"].tuning.inverse_mass_matrix) == (4, 8, 8)
    resumed = bayes.sample(independent, initial_position=START, chunk_size=100,
                           checkpoint=ckpt, **RUN)  # fmt: skip
    np.testing.assert_array_equal(resumed.posterior["x"], ref.posterior["x"])


def test_auto_without_warmup_samples_with_the_identity_diagonal(tmp_path: Path):
    """No warmup, nothing estimated: the identity, switched to the diagonal metric at once."""
    ckpt = tmp_path / "run.ckpt"
    run = {**RUN, "num_warmup": 0}
    idata = bayes.sample(correlated, initial_position={"x": jnp.zeros(3)}, checkpoint=ckpt, **run)
    assert json_list(idata, "mass_matrix") == ["diagonal"] * 4
    with open(ckpt, "rb") as f:
        tuning = pickle.load(f)["states"].tuning
    np.testing.assert_array_equal(tuning.inverse_mass_matrix, np.ones((4, 3)))
    assert idata.posterior["x"].shape == (4, RUN["num_samples"], 3)


def test_resolve_mass_matrix_decides_only_where_a_choice_helps():
    auto = sampling._settings("nuts", {})
    assert auto.dense_mass == "auto"
    assert sampling.resolve_mass_matrix("nuts", auto, 3).dense_mass == "auto"
    assert sampling.resolve_mass_matrix("hmc", auto, 100).dense_mass == "auto"
    assert sampling.resolve_mass_matrix("nuts", auto, 1).dense_mass is False
    assert sampling.resolve_mass_matrix("nuts", auto, 101).dense_mass is False
    assert sampling.resolve_mass_matrix("chees", auto, 3).dense_mass is False
    dense = sampling._settings("nuts", {"dense_mass": True})
    assert sampling.resolve_mass_matrix("nuts", dense, 500).dense_mass is True


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_bad_dense_mass_is_a_clear_error(value):
    with pytest.raises(ValueError, match="dense_mass must be True, False or 'auto'"):
        bayes.sample(independent, initial_position=START, dense_mass=value, **RUN)


def json_list(idata, name):
    import json

    return json.loads(idata.posterior.attrs[name])
