"""A run killed with SIGKILL resumes from its checkpoint and ends with the same draws."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayes import posteriordb

CHILD = r"""
import sys, time
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import bayes
from bayes import posteriordb, sampling

mode, checkpoint, out = sys.argv[1:4]
module = posteriordb.load_model("eight_schools-eight_schools_noncentered")
settings = dict(num_chains=4, num_warmup=500, num_samples=500, seed=7, progress=False)
if mode == "slow":
    def after_chunk(progress):
        print("chunk", progress["t"], flush=True)
        time.sleep(0.5)
    sampling._after_chunk = after_chunk
idata = bayes.sample(module.model, module.data, checkpoint=checkpoint, **settings)
ref = bayes.sample(module.model, module.data, **settings)
np.savez(out, theta=idata.posterior["theta"].values, lp=idata.sample_stats["lp"].values,
         ref_theta=ref.posterior["theta"].values, ref_lp=ref.sample_stats["lp"].values)
"""


@pytest.mark.slow
def test_sigkill_then_resume_reproduces_uninterrupted_run(tmp_path: Path) -> None:
    try:
        posteriordb.locate()
    except posteriordb.PosteriorDBError:
        pytest.skip("posteriordb data folder not found")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "out.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "BAYES_PROGRESS": "0"}
    cmd = [sys.executable, str(script), "slow", str(ckpt), str(out)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    for line in child.stdout:
        if line.startswith("chunk") and int(line.split()[1]) >= 700:
            os.kill(child.pid, signal.SIGKILL)  # mid-sampling, while it sleeps or computes
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()
    with open(ckpt, "rb") as f:
        saved = pickle.load(f)
    assert 700 <= saved["t"] < 1000  # the resume starts mid-run, not from scratch
    cmd[2] = "resume"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = np.load(out)
    np.testing.assert_array_equal(result["theta"], result["ref_theta"])
    np.testing.assert_array_equal(result["lp"], result["ref_lp"])
