"""NNGP/NTK kernels against quadrature of the defining expectations and wide random networks."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from bayes.models import nngp
from scipy import stats
from scipy.special import erf

X = np.array(
    [[0.3, -1.2, 0.8], [1.5, 0.4, -0.3], [-0.7, -0.2, 1.1], [0.0, 2.0, 0.5], [0.3, -1.2, 0.8]]
)


def _gauss_expectation(phi, k11, k22, k12, order=200):
    """E[phi(u) phi(v)] for a centred 2-D Gaussian by tensor Gauss-Hermite quadrature."""
    t, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    cov = np.array([[k11, k12], [k12, k22]])
    chol = np.linalg.cholesky(cov + 1e-300 * np.eye(2))
    z1, z2 = np.meshgrid(t, t, indexing="ij")
    u = chol[0, 0] * z1
    v = chol[1, 0] * z1 + chol[1, 1] * z2
    return float(np.sum(np.outer(w, w) * phi(u) * phi(v)))


def _quadrature_nngp(x, depth, weight_variance, bias_variance, phi):
    """The NNGP recursion with every expectation done by numerical quadrature."""
    k = weight_variance * x @ x.T / x.shape[1] + bias_variance
    for _ in range(depth):
        new = np.empty_like(k)
        for i in range(len(x)):
            for j in range(len(x)):
                kij = min(k[i, j], np.sqrt(k[i, i] * k[j, j]) * (1 - 1e-12))
                new[i, j] = _gauss_expectation(phi, k[i, i], k[j, j], kij)
        k = weight_variance * new + bias_variance
    return k


def test_erf_kernel_matches_quadrature(x64):
    ref = _quadrature_nngp(X[:4], 2, 1.7, 0.2, erf)
    kw = dict(depth=2, activation="erf", weight_variance=1.7, bias_variance=0.2)
    ours = nngp.nngp_kernel(X[:4], **kw)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_relu_kernel_matches_arc_cosine_formula(x64):
    # Cho & Saul's arc-cosine kernel of order 1 for one hidden layer, no bias:
    # K = sigma_w^4 |x||x'| / (2 pi d) (sin t + (pi - t) cos t), with t the angle between x, x'.
    sw2 = 1.3
    norms = np.linalg.norm(X, axis=1)
    cos = np.clip(X @ X.T / np.outer(norms, norms), -1, 1)
    t = np.arccos(cos)
    ref = sw2**2 * np.outer(norms, norms) / (2 * np.pi * X.shape[1])
    ref = ref * (np.sin(t) + (np.pi - t) * cos)
    ours = nngp.nngp_kernel(X, depth=1, activation="relu", weight_variance=sw2)
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-12)
    # and the quadrature of E[relu relu] for deeper nets (the kink limits quadrature to ~1e-4)
    deep = nngp.nngp_kernel(X[:4], depth=3, weight_variance=2.0, bias_variance=0.3)
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
    np.testing.assert_allclose(deep, _quadrature_nngp(X[:4], 3, 2.0, 0.3, relu), rtol=2e-3)


def test_polynomial_arccos_matches_numpy(x64):
    """The kernel's arccos and sine of the angle, to float64 accuracy over [-1, 1]."""
    from bayes.models.nngp._moments import _acos_and_sin

    rho = np.concatenate([np.linspace(-1, 1, 200_001), 1 - np.logspace(-16, -1, 200)])
    theta, sine = _acos_and_sin(rho)
    np.testing.assert_allclose(theta, np.arccos(rho), rtol=0, atol=1e-14)
    # (1 - rho)(1 + rho) is exact near +-1, where 1 - rho**2 cancels
    np.testing.assert_allclose(sine, np.sqrt((1 - rho) * (1 + rho)), rtol=0, atol=1e-14)
    near_one = rho > 1 - 1e-3  # small angles keep their relative accuracy
    np.testing.assert_allclose(theta[near_one], np.arccos(rho[near_one]), rtol=1e-12, atol=1e-16)


def test_blocked_matches_unblocked_and_diag(x64):
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(37, 4)), rng.normal(size=(11, 4))
    for kind in ("nngp", "ntk"):
        kw = dict(depth=2, activation="relu", weight_variance=1.5, bias_variance=0.1, kind=kind)
        square = nngp.kernel_matrix(x1, **kw)
        blocked = nngp.kernel_matrix(x1, block_size=8, **kw)
        np.testing.assert_allclose(blocked, square, rtol=1e-13, atol=1e-13)
        cross = nngp.kernel_matrix(x1, x2, block_size=8, **kw)
        np.testing.assert_allclose(cross[:5], nngp.kernel_matrix(x1[:5], x2, **kw), rtol=1e-13)
        np.testing.assert_allclose(square, square.T, rtol=1e-12)
        assert np.linalg.eigvalsh(np.asarray(square)).min() > -1e-10
        np.testing.assert_allclose(nngp.kernel_diag(x1, **kw), np.diag(square), rtol=1e-7)


def _relu(z):
    return np.maximum(z, 0.0)


def _step(z):
    return (z > 0).astype(float)


def _erf_prime(z):
    return 2 / np.sqrt(np.pi) * np.exp(-(z**2))


PHI = {"relu": (_relu, _step), "erf": (erf, _erf_prime)}


def _random_network_kernels(rng, x, width, depth, sw2, sb2, activation):
    """Empirical NNGP (readout) kernel and NTK of one random width-``width`` network.

    Explicit standard normal weights in the NTK parameterization; the NTK is the sum
    over all weights and biases of gradient outer products, by backpropagation.
    """
    phi, dphi = PHI[activation]
    acts, pre = [x], []
    for _ in range(depth):
        a = acts[-1]
        w = rng.standard_normal((a.shape[1], width))
        b = rng.standard_normal(width)
        h = np.sqrt(sw2 / a.shape[1]) * a @ w + np.sqrt(sb2) * b
        pre.append((h, w))
        acts.append(phi(h))
    nngp_hat = sw2 * acts[-1] @ acts[-1].T / width + sb2
    # readout: f = sqrt(sw2/width) a_L v + sqrt(sb2) b_out
    v = rng.standard_normal(width)
    ntk_hat = nngp_hat.copy()
    delta = np.sqrt(sw2 / width) * np.broadcast_to(v, acts[-1].shape) * dphi(pre[-1][0])
    for layer in range(depth - 1, -1, -1):
        a_prev = acts[layer]
        ntk_hat += (delta @ delta.T) * (sw2 * a_prev @ a_prev.T / a_prev.shape[1] + sb2)
        if layer > 0:
            w = pre[layer][1]
            delta = np.sqrt(sw2 / width) * (delta @ w.T) * dphi(pre[layer - 1][0])
    return nngp_hat, ntk_hat


@pytest.mark.parametrize(
    ("activation", "depth", "width", "num_nets"),
    [("relu", 1, 4096, 32), ("erf", 1, 4096, 32), ("relu", 2, 1024, 16), ("erf", 2, 1024, 16)],
)
def test_kernels_match_wide_random_networks(activation, depth, width, num_nets):
    """Mean of empirical NNGP and NTK of random wide networks within sampling error.

    The limit is the Student-t quantile (``num_nets - 1`` degrees of freedom) at a
    family-wise level of 1e-3 over the 10 distinct entries of each kernel.
    """
    sw2, sb2 = 1.6, 0.2
    rng = np.random.default_rng(7)
    x = X[:4]
    draws = [
        _random_network_kernels(rng, x, width, depth, sw2, sb2, activation) for _ in range(num_nets)
    ]
    kw = dict(depth=depth, activation=activation, weight_variance=sw2, bias_variance=sb2)
    with jax.enable_x64(True):
        exact = [np.asarray(nngp.nngp_kernel(x, **kw)), np.asarray(nngp.ntk_kernel(x, **kw))]
    for which in range(2):
        samples = np.stack([d[which] for d in draws])
        se = samples.std(0, ddof=1) / np.sqrt(num_nets)
        z = np.abs(samples.mean(0) - exact[which]) / se
        limit = stats.t.ppf(1 - 1e-3 / (2 * 10), num_nets - 1)
        assert z.max() < limit, (which, z, samples.mean(0), exact[which])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(weight_variance=0.0), "weight_variance must be a positive"),
        (dict(weight_variance=-1.0), "weight_variance must be a positive"),
        (dict(bias_variance=-0.1), "bias_variance must be a non-negative"),
        (dict(activation="tanh"), "activation must be one of"),
        (dict(depth=-1), "depth must be a non-negative integer"),
        (dict(depth=1.5), "depth must be a non-negative integer"),
        (dict(kind="cnn"), "kind must be"),
        (dict(block_size=0), "block_size must be"),
    ],
)
def test_bad_architecture_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nngp.kernel_matrix(X, **kwargs)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="same number of features"):
        nngp.nngp_kernel(X, X[:, :2])
    with pytest.raises(ValueError, match=r"must have shape \(n, d\)"):
        nngp.nngp_kernel(X[0])
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nngp.nngp_kernel(bad)
    with pytest.raises(ValueError, match="empty"):
        nngp.nngp_kernel(np.zeros((0, 3)))
