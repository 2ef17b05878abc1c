"""Chains split across several devices.

The development and CI machines have one CPU device, so the run happens in a
child process where XLA exposes the host CPU as two devices
(``--xla_force_host_platform_device_count=2``): the same code path that a
machine with two accelerators takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayes

CHILD = textwrap.dedent(
    """
    import json

    import jax
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    import bayes
    import bayes._mcmc_run as run_module

    seen = []
    original = run_module._shard_chains

    def recording(tree, num_chains):
        out = original(tree, num_chains)
        leaf = jax.tree.leaves(out)[0]
        seen.append(sorted(d.id for d in leaf.sharding.device_set))
        return out

    run_module._shard_chains = recording

    def model():
        numpyro.sample("x", dist.Normal(jnp_loc, 2.0).expand([3]))

    jnp_loc = 1.5
    out = {"devices": len(jax.devices())}
    for method, num_chains in (("nuts", 4), ("nuts", 3), ("chees", 4)):
        seen.clear()
        idata = bayes.sample(model, method=method, num_chains=num_chains, num_warmup=300,
                             num_samples=1000, progress=False, seed=11)
        x = idata.posterior["x"].values
        out[f"{method}{num_chains}"] = {"devices": seen[0], "draws": x.tolist(),
                                "chain_shape": list(x.shape[:2])}
    # no adaptation: the first draws depend only on the per-chain keys and states
    idata = bayes.sample(model, num_chains=4, num_warmup=0, num_samples=5, progress=False, seed=3)
    out["unadapted"] = idata.posterior["x"].values.tolist()
    idata = bayes.sample(model, num_chains=4, num_warmup=0, num_samples=5, progress=False, seed=3,
                         chain_method="sequential")
    out["unadapted_sequential"] = idata.posterior["x"].values.tolist()
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def two_device_run(tmp_path_factory) -> dict:
    # The child's programs are compiled for a two-device client: keep them out
    # of the persistent cache that the single-device processes share.
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "BAYES_PROGRESS": "0",
        "BAYES_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache-2-devices")),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def _check_normal(draws: np.ndarray, loc: float, scale: float) -> None:
    """Mean and variance of every coordinate within 5 Monte Carlo standard errors."""
    import arviz as az

    for i in range(draws.shape[-1]):
        x = draws[..., i]
        sq = (x - loc) ** 2
        mcse_mean = float(np.ravel(az.mcse(x))[0])
        mcse_var = float(np.ravel(az.mcse(sq))[0])
        assert abs(x.mean() - loc) < 5 * mcse_mean, (i, x.mean(), mcse_mean)
        assert abs(sq.mean() - scale**2) < 5 * mcse_var, (i, sq.mean(), mcse_var)


def test_chains_split_across_two_devices(two_device_run):
    assert two_device_run["devices"] == 2
    run = two_device_run["nuts4"]
    assert run["devices"] == [0, 1]
    assert run["chain_shape"] == [4, 1000]
    _check_normal(np.asarray(run["draws"]), 1.5, 2.0)


def test_indivisible_chain_count_stays_on_one_device(two_device_run):
    run = two_device_run["nuts3"]
    assert len(run["devices"]) == 1
    assert run["chain_shape"] == [3, 1000]
    _check_normal(np.asarray(run["draws"]), 1.5, 2.0)


def test_chees_chains_split_across_two_devices(two_device_run):
    run = two_device_run["chees4"]
    assert run["devices"] == [0, 1]
    _check_normal(np.asarray(run["draws"]), 1.5, 2.0)


def test_sharded_chains_get_the_keys_of_an_unsharded_run(two_device_run):
    # Each device runs its block of chains as a program of its own; chain i must
    # still get the key it gets on one device, so the draws do not depend on the
    # number of devices (up to rounding: XLA vectorizes 2 and 4 chains differently).
    def model():
        numpyro.sample("x", dist.Normal(1.5, 2.0).expand([3]))

    idata = bayes.sample(model, num_chains=4, num_warmup=0, num_samples=5, progress=False, seed=3)
    for run in ("unadapted", "unadapted_sequential"):
        np.testing.assert_allclose(
            np.asarray(two_device_run[run]), idata.posterior["x"].values, rtol=1e-5, atol=1e-5
        )
