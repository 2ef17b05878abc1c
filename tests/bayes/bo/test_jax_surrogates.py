"""JAX surrogates of the BO loop: predictions, gradients through the bridge, posteriors, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("botorch") and __import__("torch")

from bayes.models.bnn.experiments import SMALL as _SMALL  # noqa: E402

from bayes.bo.acquisition import suggest  # noqa: E402
from bayes.bo.surrogates import available_surrogates, make_surrogate  # noqa: E402

# Small settings (shared with the bo-bnn experiment): the tests check behaviour, the
# defaults are exercised by the experiment's full plan.
SMALL = {name: opts for name, opts in _SMALL.items() if name != "saas"}
NAMES = sorted(SMALL)


def truth(x):
    return torch.sin(6 * x[..., :1]) + 0.5 * x[..., :1]


class _Fitted(dict):
    def __init__(self, X, Y):
        super().__init__()
        self.X, self.Y = X, Y

    def __missing__(self, name):
        torch.manual_seed(1)
        self[name] = make_surrogate(name, **SMALL[name]).fit(self.X, self.Y)
        return self[name]


@pytest.fixture(scope="module")
def fitted():
    """Each surrogate (fitted on first use) on 24 points dense in [0, 0.6], none beyond."""
    torch.manual_seed(0)
    X = 0.6 * torch.rand(24, 1, dtype=torch.float64)
    Y = truth(X)
    return X, Y, _Fitted(X, Y)


def _mean_sd(model, X):
    from botorch.posteriors.fully_bayesian import GaussianMixturePosterior

    post = model.posterior(X[:, None, :])
    mixture = isinstance(post, GaussianMixturePosterior)  # Student-t: mixture over scales
    mean = post.mixture_mean if mixture else post.mean
    var = post.mixture_variance if mixture else post.variance
    return mean.reshape(-1), var.reshape(-1).sqrt()


def test_registered():
    assert set(NAMES) <= set(available_surrogates())


@pytest.mark.parametrize("name", NAMES)
def test_predictions_follow_the_data_and_widen_away_from_it(fitted, name):
    _, _, models = fitted
    dense = torch.linspace(0.05, 0.55, 11, dtype=torch.float64)[:, None]
    far = torch.tensor([[0.95], [1.0]], dtype=torch.float64)
    mean, sd = _mean_sd(models[name], dense)
    err = (mean - truth(dense).reshape(-1)).abs()
    # The function spans about 2.3 units on [0, 0.6]; 0.15 is 6.5% of that.
    assert float(err.max()) < 0.15, (name, err)
    _, sd_far = _mean_sd(models[name], far)
    # Mean-field VI is known to barely widen its predictive away from data (Foong et al.
    # 2020); it must still be wider there, the others at least twice as wide.
    factor = 1.0 if name == "bnn-vi" else 2.0
    assert float(sd_far.min()) > factor * float(sd.mean()), (name, sd, sd_far)


@pytest.mark.parametrize("name", NAMES)
def test_acquisition_gradient_matches_finite_differences(fitted, name):
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.sampling.get_sampler import get_sampler

    _, Y, models = fitted
    model = models[name]
    x0 = torch.tensor([[[0.3]], [[0.7]]], dtype=torch.float64)
    sampler = get_sampler(model.posterior(x0), torch.Size([64]), seed=1)
    acqf = qLogExpectedImprovement(model, best_f=Y.max(), sampler=sampler)
    x = x0.clone().requires_grad_(True)
    value = acqf(x).sum()
    (grad,) = torch.autograd.grad(value, x)
    assert torch.isfinite(grad).all()
    eps = 1e-5
    fd = (acqf(x0 + eps).sum() - acqf(x0 - eps).sum()) / (2 * eps)
    # Each batch element depends on its own input only, so the summed FD is the gradient sum.
    assert abs(float(grad.sum()) - float(fd)) < 1e-4 * max(1.0, abs(float(fd))), (grad, fd)


def test_every_acquisition_runs_on_an_ensemble_and_a_mixture(fitted):
    X, Y, models = fitted
    opts = {"num_restarts": 2, "raw_samples": 16, "maxiter": 10, "num_candidates": 64}
    for name in ("ensemble", "stp"):
        for acq in ("qlognei", "qlogei", "qucb", "ts"):
            c = suggest(models[name], X, Y, q=2, acquisition=acq, options=opts)
            assert c.shape == (2, 1) and bool(((c >= 0) & (c <= 1)).all()), (name, acq)


def test_bnn_hmc_linear_network_matches_conjugate_posterior():
    """depth=0 is Bayesian linear regression; a tight noise prior makes it conjugate."""
    import jax
    from bayes.models.bnn import BNNPrior, MLPConfig, pad_data, prior_scales, sample_nuts

    rng = np.random.default_rng(3)
    n, d, noise = 12, 2, 0.3
    x = rng.uniform(-1, 1, (n, d))
    y = x @ np.array([[1.5], [-0.7]]) + 0.2 + noise * rng.standard_normal((n, 1))
    config = MLPConfig(d, 1, depth=0)
    prior = BNNPrior(log_noise_loc=math.log(noise), log_noise_scale=1e-4)
    with jax.enable_x64(True):
        draws = sample_nuts(config, pad_data(x, y), seed=0, num_chains=4, num_warmup=500,
                            num_samples=1000, thinning=1, prior=prior)  # fmt: skip
    s = prior_scales(config, weight_scale=prior.weight_scale, bias_scale=prior.bias_scale,
                     input_scale=prior.input_scale)  # fmt: skip
    design = np.c_[x, np.ones(n)]  # parameters are (W row-major, then b)
    precision = np.diag(1 / s**2) + design.T @ design / noise**2
    cov = np.linalg.inv(precision)
    mean = cov @ design.T @ y[:, 0] / noise**2
    w = np.asarray(draws.w)
    sd = np.sqrt(np.diag(cov))
    # 4000 NUTS draws of a Gaussian: ESS >= 1000, so mean s.e. <= sd / 31.
    np.testing.assert_array_less(np.abs(w.mean(0) - mean), 5 * sd / math.sqrt(1000))
    np.testing.assert_allclose(w.std(0), sd, rtol=0.1)


def test_ibnn_kernel_matches_arccosine_and_arcsin_recursions():
    import jax
    from bayes.models.bnn import KernelConfig, kernel

    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(0, 1, (4, 3)), rng.uniform(0, 1, (5, 3))
    wv, bv = 1.7, 0.2
    params = {"log_scale": 0.0, "log_weight_var": math.log(wv), "log_bias_var": math.log(bv)}

    def reference(a, b, depth, activation):
        u, v = 2 * a - 1, 2 * b - 1
        k12, k11, k22 = wv * u @ v / 3 + bv, wv * u @ u / 3 + bv, wv * v @ v / 3 + bv
        for _ in range(depth):
            if activation == "relu":
                c = np.clip(k12 / np.sqrt(k11 * k22), -1, 1)
                t = np.arccos(c)
                e12 = np.sqrt(k11 * k22) * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)
                e11, e22 = k11 / 2, k22 / 2
            else:
                e12 = 2 / np.pi * np.arcsin(2 * k12 / np.sqrt((1 + 2 * k11) * (1 + 2 * k22)))
                e11 = 2 / np.pi * np.arcsin(2 * k11 / (1 + 2 * k11))
                e22 = 2 / np.pi * np.arcsin(2 * k22 / (1 + 2 * k22))
            k12, k11, k22 = wv * e12 + bv, wv * e11 + bv, wv * e22 + bv
        return k12

    with jax.enable_x64(True):
        for activation in ("relu", "erf"):
            for depth in (1, 3):
                got = np.asarray(kernel(KernelConfig("ibnn", depth, activation), params, x1, x2))
                want = np.array([[reference(a, b, depth, activation) for b in x2] for a in x1])
                np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=f"{activation} {depth}")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_cli_loop_on_branin(name, tmp_path):
    import json

    from bayes.bo.study import Study
    from bayes.cli import main

    store = tmp_path / f"{name}.db"
    options = [f"--surrogate-option={k}={json.dumps(v)}" for k, v in SMALL[name].items()]
    code = main(["optimize", "--problem", "branin", "--store", str(store), "--budget", "10",
                 "--n-initial", "6", "--surrogate", name, *options, "--num-restarts", "2",
                 "--raw-samples", "32", "--no-progress"])  # fmt: skip
    assert code == 0
    study = Study.load(store)
    assert study.counts()["complete"] == 10
    assert study.settings["surrogate"] == name
    study.close()


def test_bnn_hmc_next_round_is_warm_and_compiles_nothing(fitted):
    """One more observation: same padded size, chains continue, no program is compiled."""
    from bayes import sampling
    from bayes.bo.jax_surrogates import BNNHMCSurrogate

    X, _, models = fitted
    assert models["bnn-hmc"] is not None  # the first round (fitted here if not yet)
    compiled = len(sampling._COMPILED)
    X2 = torch.cat([X, torch.tensor([[0.3]], dtype=torch.float64)])
    surrogate = make_surrogate("bnn-hmc", **SMALL["bnn-hmc"])
    key = (surrogate._config(1, 1), surrogate.num_chains, surrogate._prior())
    previous = BNNHMCSurrogate._previous[key][1]
    model = surrogate.fit(X2, truth(X2))
    assert len(sampling._COMPILED) == compiled
    mean, _ = _mean_sd(model, X2[-1:])
    assert abs(float(mean[0]) - float(truth(X2[-1:]))) < 0.15
    assert BNNHMCSurrogate._previous[key][1] is not previous


def test_network_surrogates_take_prior_options():
    from bayes.models.bnn import BNNPrior

    surrogate = make_surrogate("bnn-hmc", weight_scale=3, log_noise_scale=0.5)
    assert surrogate._prior() == BNNPrior(weight_scale=3.0, log_noise_scale=0.5)
    # bnn-hmc's own default weight scale; the MAP-like fits keep BNNPrior's.
    assert make_surrogate("bnn-hmc", log_noise_scale=0.5)._prior() == BNNPrior(
        weight_scale=2.0, log_noise_scale=0.5
    )
    assert make_surrogate("bnn-vi")._prior() == make_surrogate("ensemble")._prior() == BNNPrior()
    for name in ("bnn-vi", "ensemble"):
        assert make_surrogate(name, input_scale=1.5)._prior().input_scale == 1.5
    with pytest.raises(ValueError, match=r"unknown option\(s\) weight_scal; prior options are"):
        make_surrogate("ensemble", weight_scal=2.0)
    with pytest.raises(ValueError, match="weight_scale must be a positive finite number"):
        make_surrogate("bnn-hmc", weight_scale=0)


def test_bnn_hmc_warns_when_the_posterior_explains_the_data_as_noise():
    """20 Sobol points of Branin: under ``weight_scale=1`` the posterior calls them noise.

    Branin's values are skewed (0.4 to 300); with the fan-in scaled prior at
    ``weight_scale=1`` the tanh network's functions are too smooth for 20 such
    points, and NUTS leaves the MAP fit for a high-noise region, where the
    surrogate barely follows the data. The default (``weight_scale=2``) keeps the fit.
    """
    import warnings

    from botorch.test_functions import Branin

    from bayes.bo.surrogates import SurrogateFitWarning

    X = torch.quasirandom.SobolEngine(2, scramble=True, seed=0).draw(20).double()
    lo, hi = Branin().bounds
    Y = -Branin()(lo + (hi - lo) * X).unsqueeze(-1)
    relative_rmse = {}
    for weight_scale in (1.0, 2.0):
        torch.manual_seed(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            options = {k: v for k, v in SMALL["bnn-hmc"].items() if k != "weight_scale"}
            if weight_scale == 1.0:  # else the surrogate's default
                options["weight_scale"] = weight_scale
            surrogate = make_surrogate("bnn-hmc", **options)
            assert surrogate._prior().weight_scale == weight_scale
            model = surrogate.fit(X, Y)
        noisy = [w for w in caught if issubclass(w.category, SurrogateFitWarning)]
        assert bool(noisy) == (weight_scale == 1.0), [str(w.message) for w in noisy]
        assert surrogate.noise_sd.shape == (1,)
        assert (surrogate.noise_sd[0] > 0.5) == (weight_scale == 1.0), surrogate.noise_sd
        if noisy:
            assert "20 observations" in str(noisy[0].message)
            assert "weight_scale=2" in str(noisy[0].message)
        with torch.no_grad():
            mean = model.posterior(X).mean.reshape(-1)
        relative_rmse[weight_scale] = float((mean - Y.reshape(-1)).pow(2).mean().sqrt() / Y.std())
    assert relative_rmse[1.0] > 0.5 > relative_rmse[2.0], relative_rmse
