"""bayes.sample on exact targets, compile-once, partial runs after Ctrl-C, bad input."""

from __future__ import annotations

import arviz as az
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from bayes.inference.mcmc import schedule

import bayes
from bayes import posteriordb, sampling
from bayes.target import DataError, InitializationError

D_STD, D_CORR, D_T = 10, 50, 3
RHO, DF = 0.9, 10.0
STD_MEAN = np.linspace(-2.0, 2.0, D_STD)
STD_SD = np.linspace(0.5, 3.0, D_STD)
T_LOC, T_SCALE = 1.0, 2.0
TRACES = {"n": 0}


def exact_logdensity(x):
    """Independent blocks: N(m, diag s^2), equicorrelated N(0, S) with rho 0.9, Student-t."""
    TRACES["n"] += 1  # runs only while JAX traces the function
    z = (x["std"] - STD_MEAN) / STD_SD
    lp = -0.5 * jnp.sum(z**2)
    c = x["corr"]
    quad = (jnp.sum(c**2) - RHO / (1 + (D_CORR - 1) * RHO) * jnp.sum(c) ** 2) / (1 - RHO)
    lp -= 0.5 * quad
    u = (x["t"] - T_LOC) / T_SCALE
    return lp - 0.5 * (DF + 1) * jnp.sum(jnp.log1p(u**2 / DF))


INITIAL = {"std": jnp.zeros(D_STD), "corr": jnp.zeros(D_CORR), "t": jnp.zeros(D_T)}
SETTINGS = dict(num_chains=4, num_warmup=500, progress=False, chunk_size=250)


@pytest.fixture(scope="module")
def exact_run():
    idata = bayes.sample(exact_logdensity, initial_position=INITIAL, num_samples=1000, seed=1,
                         **SETTINGS)  # fmt: skip
    return idata, TRACES["n"]


def _within_mcse(draws: np.ndarray, mean: np.ndarray, var: np.ndarray, k: float = 5.0) -> None:
    """Means and variances of each component within k Monte Carlo standard errors."""
    for i in range(draws.shape[-1]):
        x = draws[..., i]
        mcse_mean = float(np.ravel(az.mcse(x))[0])
        sq = (x - mean[i]) ** 2
        mcse_var = float(np.ravel(az.mcse(sq))[0])
        assert abs(x.mean() - mean[i]) < k * mcse_mean, (i, x.mean(), mean[i], mcse_mean)
        assert abs(sq.mean() - var[i]) < k * mcse_var, (i, sq.mean(), var[i], mcse_var)


def test_exact_targets_means_and_variances(exact_run):
    idata, _ = exact_run
    post = idata.posterior
    _within_mcse(post["std"].values, STD_MEAN, STD_SD**2)
    _within_mcse(post["corr"].values, np.zeros(D_CORR), np.ones(D_CORR))
    t_var = T_SCALE**2 * DF / (DF - 2)
    _within_mcse(post["t"].values, np.full(D_T, T_LOC), np.full(D_T, t_var))
    corr = np.corrcoef(post["corr"].values.reshape(-1, D_CORR)[:, :2].T)[0, 1]
    assert abs(corr - RHO) < 0.03
    assert int(idata.sample_stats["diverging"].sum()) == 0


def test_groups_stats_and_attrs(exact_run):
    idata, _ = exact_run
    stats = idata.sample_stats
    for name in ("diverging", "energy", "tree_depth", "n_steps", "acceptance_rate", "lp"):
        assert stats[name].shape == (4, 1000)
    attrs = idata.posterior.attrs
    assert attrs["method"] == "nuts" and attrs["partial"] == 0
    assert attrs["compile_s"] > 0 and attrs["sampling_s"] > 0 and attrs["warmup_s"] > 0
    assert 0.6 < float(stats["acceptance_rate"].mean()) < 0.95


def test_model_traced_once_per_process(exact_run):
    # initial points, warmup and sampling chunks share one trace of the log-density
    _, traces_after_first = exact_run
    assert traces_after_first == 1


def test_second_call_does_not_retrace(exact_run):
    _, traces_after_first = exact_run
    idata = bayes.sample(exact_logdensity, initial_position=INITIAL, num_samples=250, seed=2,
                         **SETTINGS)  # fmt: skip
    assert TRACES["n"] == traces_after_first
    assert idata.posterior.attrs["compile_s"] == 0.0


def test_ctrl_c_returns_partial_draws(exact_run, monkeypatch):
    def interrupt(progress):
        if progress["t"] > SETTINGS["num_warmup"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(sampling, "_after_chunk", interrupt)
    idata = bayes.sample(exact_logdensity, initial_position=INITIAL, num_samples=1000, seed=1,
                         **SETTINGS)  # fmt: skip
    assert idata.posterior.attrs["partial"] == 1
    assert idata.posterior.sizes["draw"] == SETTINGS["chunk_size"]
    full, _ = exact_run  # same seed: the partial draws are the start of the full run
    np.testing.assert_array_equal(
        idata.posterior["corr"].values, full.posterior["corr"].values[:, : SETTINGS["chunk_size"]]
    )


def regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0.0, 10.0))
    s = numpyro.sample("s", dist.HalfNormal(2.0))
    numpyro.deterministic("a2", 2 * a)
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(a * x, s), obs=y)


def test_numpyro_model_groups(x64):
    try:
        module = posteriordb.load_model("eight_schools-eight_schools_noncentered")
    except posteriordb.PosteriorDBError:
        pytest.skip("posteriordb data folder not found")
    # the settings of the NUTS posteriordb test (which checks the means), sharing its program
    idata = bayes.sample(module.model, module.data, num_chains=4, num_warmup=500,
                         num_samples=500, progress=False, seed=5)  # fmt: skip
    post = idata.posterior
    assert set(post.data_vars) == {"mu", "tau", "theta_trans", "theta"}
    np.testing.assert_allclose(post["theta"], post["theta_trans"] * post["tau"] + post["mu"],
                               rtol=1e-10)  # fmt: skip
    assert idata.log_likelihood["y"].shape == (4, 500, 8)
    np.testing.assert_array_equal(idata.observed_data["y"], module.data["y"])
    assert np.isfinite(az.loo(idata).elpd_loo)
    assert idata.posterior.attrs["num_draws"] == 500


def test_bad_input_errors():
    x = np.ones(5)
    with pytest.raises(DataError, match="takes no argument 'z'"):
        bayes.sample(regression, {"x": x, "z": x})
    with pytest.raises(DataError, match="lacks 'x'"):
        bayes.sample(regression, {"y": x})
    with pytest.raises(DataError, match="NaN"):
        bayes.sample(regression, {"x": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match="unknown method 'gibbs'; valid methods: nuts"):
        bayes.sample(regression, {"x": x}, method="gibbs")
    with pytest.raises(ValueError, match="unknown option"):
        bayes.sample(regression, {"x": x}, step_sise=0.1)
    with pytest.raises(ValueError, match="chain_method must be 'vectorized' or 'sequential'"):
        bayes.sample(regression, {"x": x}, chain_method="parallel")
    with pytest.raises(ValueError, match="num_samples"):
        bayes.sample(regression, {"x": x}, num_samples=0)


def test_no_finite_initial_point():
    def bad(y=None):
        m = numpyro.sample("m", dist.Normal())
        numpyro.factor("never", jnp.where(m > 100.0, 0.0, -jnp.inf))

    with pytest.raises(InitializationError, match="not finite at any of the 100 initial points"):
        bayes.sample(bad, {}, num_warmup=10, num_samples=10, progress=False)


def test_external_methods_dispatch_or_explain():
    for method, module in (("smc", "bayes.smc_sampling"), ("vi", "bayes.vi_sampling")):
        try:
            fn = sampling._external(method)
        except ValueError as err:
            assert module in str(err)
        else:
            assert callable(fn)


@pytest.mark.parametrize("num_warmup", [0, 1, 19, 20, 21, 100, 149, 150, 151, 500, 1000, 1234])
def test_schedule_is_blackjax_window_schedule(num_warmup):
    from blackjax.adaptation.window_adaptation import build_schedule

    stage, window_end = schedule(num_warmup)
    assert stage.shape == window_end.shape == (num_warmup,)
    if num_warmup:
        reference = np.asarray(build_schedule(num_warmup))
        np.testing.assert_array_equal(stage, reference[:, 0])
        np.testing.assert_array_equal(window_end, reference[:, 1].astype(bool))


def test_auto_chunk_size():
    auto = sampling.auto_chunk_size
    assert auto((1000, 1000), interactive=True) == 100
    assert auto((1000, 1000), interactive=False) == 250  # four calls per phase
    assert auto((2000, 1000), interactive=False) == 500
    assert auto((300, 1000), interactive=False) == 100  # one length dividing both phases
    assert auto((333, 1000), interactive=False) == 250  # none >= 100: a short last chunk
    assert auto((0, 10), interactive=False) == 100
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        bayes.sample(exact_logdensity, initial_position=INITIAL, chunk_size=0)


def test_compiled_programs_are_bounded_most_recent_kept(monkeypatch):
    monkeypatch.setattr(sampling, "_COMPILED", type(sampling._COMPILED)())
    monkeypatch.setattr(sampling, "_MAX_COMPILED", 2)
    x = jnp.ones(3)
    for name in ("a", "b"):
        sampling._compile(name, None, lambda: jnp.sin, x)
    assert sampling._compile("a", None, lambda: jnp.sin, x)[1] == 0.0  # hit: "a" is now newest
    sampling._compile("c", None, lambda: jnp.sin, x)
    assert [k[0] for k in sampling._COMPILED] == ["a", "c"]


def test_clear_cache_releases_our_programs_and_recompiles_on_demand(monkeypatch):
    monkeypatch.setattr(sampling, "_COMPILED", type(sampling._COMPILED)())
    x = jnp.ones(3)
    sampling._compile("a", None, lambda: jnp.sin, x)
    assert sampling._compile("a", None, lambda: jnp.sin, x)[1] == 0.0  # cached
    bayes.clear_cache()
    assert len(sampling._COMPILED) == 0
    assert sampling._compile("a", None, lambda: jnp.sin, x)[1] > 0.0  # built again


def test_checkpoint_records_the_chunk_length_in_use(tmp_path):
    # a checkpoint from an explicit chunk_size=100 resumes under the default, which
    # also runs 100-step chunks when checkpointing; another length is another run
    ckpt = tmp_path / "run.ckpt"
    small = dict(initial_position={"x": jnp.zeros(2)}, num_chains=2, num_warmup=100,
                 num_samples=100, progress=False, seed=3)  # fmt: skip

    def logdensity(p):
        return -0.5 * jnp.sum(p["x"] ** 2)

    first = bayes.sample(logdensity, checkpoint=str(ckpt), chunk_size=100, **small)
    again = bayes.sample(logdensity, checkpoint=str(ckpt), **small)
    np.testing.assert_array_equal(first.posterior["x"].values, again.posterior["x"].values)
    with pytest.raises(Exception, match="different run"):
        bayes.sample(logdensity, checkpoint=str(ckpt), chunk_size=50, **small)


def test_sequential_chains_draw_what_vectorized_chains_draw():
    # Without adaptation the first draws depend only on the per-chain keys and states:
    # running each chain on its own must give each chain the key it gets under vmap.
    run = dict(initial_position=INITIAL, num_chains=4, num_warmup=0, num_samples=5,
               progress=False, seed=2)  # fmt: skip
    vec = bayes.sample(exact_logdensity, **run).posterior
    seq = bayes.sample(exact_logdensity, chain_method="sequential", **run).posterior
    for name in ("std", "corr", "t"):
        np.testing.assert_allclose(seq[name].values, vec[name].values, rtol=1e-4, atol=1e-4)


def test_sequential_chains_sample_the_exact_targets():
    idata = bayes.sample(exact_logdensity, initial_position=INITIAL, num_samples=1000, seed=3,
                         chain_method="sequential", **SETTINGS)  # fmt: skip
    post = idata.posterior
    _within_mcse(post["std"].values, STD_MEAN, STD_SD**2)
    t_var = T_SCALE**2 * DF / (DF - 2)
    _within_mcse(post["t"].values, np.full(D_T, T_LOC), np.full(D_T, t_var))
    assert post["std"].shape[:2] == (4, 1000)
