"""KroSBL: efficient E-step vs dense formulas, EM monotonicity, recovery, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.models import krosbl

SIZES, MEAS, SPARSITY = (6, 6, 6), (4, 5, 6), (2, 2, 2)


def _problem(seed: int, snr_db: float, is_complex: bool = False):
    return krosbl.simulate_problem(
        SIZES, MEAS, SPARSITY, snr_db, rng_key=jax.random.key(seed), is_complex=is_complex
    )


@pytest.mark.parametrize("is_complex", [False, True])
def test_estep_matches_dense_posterior(x64, is_complex: bool) -> None:
    p = krosbl.simulate_problem(
        (4, 5, 3), (3, 4, 2), (2, 2, 1), 10.0, rng_key=jax.random.key(1), is_complex=is_complex
    )
    keys = jax.random.split(jax.random.key(10), 3)
    gammas = [jax.random.uniform(k, (n,)) + 0.05 for k, n in zip(keys, (4, 5, 3))]
    noise_var = 0.3
    post = krosbl.kron_estep(p.y, p.factors, gammas, noise_var)

    # Ground truth: Sigma = (Gamma^-1 + A^H A / sigma2)^-1 with the full dictionary.
    a = np.asarray(krosbl.kron_dense(p.factors))
    gamma = np.asarray(krosbl.kron_vector(gammas))
    sigma = np.linalg.inv(np.diag(1.0 / gamma) + a.conj().T @ a / noise_var)
    mean = sigma @ a.conj().T @ np.asarray(p.y) / noise_var
    cov_y = noise_var * np.eye(a.shape[0]) + (a * gamma) @ a.conj().T
    cost = np.linalg.slogdet(cov_y)[1] + np.real(np.conj(p.y) @ np.linalg.solve(cov_y, p.y))

    np.testing.assert_allclose(post.mean, mean, atol=1e-10, rtol=0)
    np.testing.assert_allclose(post.var, np.real(np.diag(sigma)), atol=1e-10, rtol=0)
    assert abs(float(post.cost) - cost) < 1e-10 * max(1.0, abs(cost))
    residual = np.sum(np.abs(np.asarray(p.y) - a @ mean) ** 2)
    assert abs(float(post.residual) - residual) < 1e-10 * residual
    dense = krosbl.dense_estep(p.y, jnp.asarray(a), jnp.asarray(gamma), noise_var)
    np.testing.assert_allclose(dense.mean, mean, atol=1e-10, rtol=0)
    np.testing.assert_allclose(dense.var, np.real(np.diag(sigma)), atol=1e-10, rtol=0)
    # Pruned (zero) hyperparameters give exactly zero mean and variance there.
    gammas[1] = gammas[1].at[2].set(0.0)
    pruned = krosbl.kron_estep(p.y, p.factors, gammas, noise_var)
    dead = np.asarray(krosbl.kron_vector(gammas)) == 0
    assert np.all(np.asarray(pruned.mean)[dead] == 0) and np.all(np.asarray(pruned.var)[dead] == 0)


def test_svd_mstep_power_iteration_matches_lapack_svd(x64) -> None:
    # SVD-KroSBL's rank-1 step takes the leading left singular vector of a
    # nonnegative unfolding by warm-started power iteration; it must agree with
    # a full SVD, also from a poor warm start and with a small spectral gap.
    from bayes.models.krosbl.sbl import _leading_left_vector

    rng = np.random.default_rng(0)
    u1, v1 = rng.uniform(size=8), rng.uniform(size=30)
    cases = [
        rng.uniform(size=(8, 30)) ** 4,
        np.outer(u1, v1) + 0.3 * rng.uniform(size=(8, 30)),
        # Singular values in ratio 0.95 (reducible: disjoint row and column blocks).
        np.kron(np.diag([1.0, 0.95]), np.ones((4, 15))),
    ]
    for mat in cases:
        ref = np.abs(np.linalg.svd(mat)[0][:, 0])
        for start in (np.ones(8), rng.uniform(size=8), np.eye(8)[7]):
            u = np.asarray(_leading_left_vector(jnp.asarray(mat), jnp.asarray(start)))
            np.testing.assert_allclose(u, ref, atol=1e-10)
    # Everything pruned: a zero vector, not NaN.
    assert np.all(np.asarray(_leading_left_vector(jnp.zeros((8, 30)), jnp.ones(8))) == 0)


def test_kron_matvec_matches_dense(x64) -> None:
    p = _problem(2, 20.0, is_complex=True)
    np.testing.assert_allclose(
        krosbl.kron_matvec(p.factors, p.x), krosbl.kron_dense(p.factors) @ p.x, atol=1e-12
    )


@pytest.mark.parametrize("method", ["am", "pc"])
def test_generalized_em_never_increases_cost(x64, method: str) -> None:
    p = _problem(3, 15.0)
    cfg = krosbl.SBLConfig(method=method, max_iter=60, tol=0.0, prune_tol=0.0, pc_modes=(0, 2))
    out = jax.jit(lambda y, f, s: krosbl.run_sbl(y, f, s, cfg))(p.y, p.factors, p.noise_var)
    costs = np.asarray(out.costs)
    assert int(out.num_iterations) == 60 and np.all(np.isfinite(costs))
    steps = np.diff(costs)
    assert np.all(steps <= 1e-9 * np.abs(costs[1:])), steps.max()
    assert costs[-1] < costs[0] - 1.0


def test_recovery_of_exact_kronecker_sparse_signal() -> None:
    with jax.enable_x64(True):
        probs = jax.vmap(lambda s: _problem(s, 40.0))(jnp.arange(4))
    truth, support = np.asarray(probs.x), np.asarray(probs.support)
    for method, extra in [("svd", {}), ("am", {"max_iter": 500})]:
        res = krosbl.fit_batch(
            probs.y, list(probs.factors), method=method, noise_var=probs.noise_var, **extra
        )
        err = np.sum((np.asarray(res.x) - truth) ** 2, -1) / np.sum(truth**2, -1)
        # 40 dB SNR: the oracle least-squares error is about 1e-4 * |S| / M = 7e-6.
        assert np.all(err < 1e-3), (method, err)
        if method == "svd":
            assert np.array_equal(np.asarray(res.support), support)


def test_fit_is_equivariant_to_the_units_of_y() -> None:
    # Scaling y by c (and sigma2 by c^2) must scale the estimate by c: EM starts
    # from the power-matched gamma_0, not from a fixed gamma = 1.
    with jax.enable_x64(True):
        p = _problem(9, 20.0)
    y, fs, nv = np.asarray(p.y), [np.asarray(a) for a in p.factors], float(p.noise_var)
    for method in ("svd", "am"):
        ref = krosbl.fit(y, fs, method=method, noise_var=nv, max_iter=100)
        for c in (1e-3, 1e3):
            res = krosbl.fit(c * y, fs, method=method, noise_var=c**2 * nv, max_iter=100)
            assert int(res.num_iterations) == int(ref.num_iterations)
            np.testing.assert_allclose(np.asarray(res.x) / c, ref.x, rtol=1e-6, atol=1e-9)


def test_komp_noiseless_single_atom_and_least_squares() -> None:
    with jax.enable_x64(True):
        p1 = krosbl.simulate_problem(SIZES, MEAS, (1, 1, 1), 300.0, rng_key=jax.random.key(7))
        p2 = _problem(8, 300.0)
    # One atom without noise: Cauchy-Schwarz makes the true atom the best one.
    res = krosbl.fit(p1.y, list(p1.factors), method="komp", sparsity=(1, 1, 1))
    np.testing.assert_allclose(res.x, p1.x, atol=1e-8)
    # Several atoms: the residual is orthogonal to every selected atom (least squares).
    res = krosbl.fit(p2.y, list(p2.factors), method="komp", sparsity=SPARSITY)
    a = np.asarray(krosbl.kron_dense(p2.factors))
    sel = np.asarray(res.support)
    assert sel.sum() == 8 and [int(m.sum()) for m in res.gamma_factors] == [2, 2, 2]
    residual = np.asarray(p2.y) - a @ np.asarray(res.x)
    assert np.max(np.abs(a[:, sel].T @ residual)) < 1e-8 * np.linalg.norm(p2.y)


def test_fit_single_learns_noise_and_returns_support() -> None:
    with jax.enable_x64(True):
        p = _problem(5, 25.0)
    res = krosbl.fit(np.asarray(p.y), [np.asarray(a) for a in p.factors], method="svd")
    assert int(res.num_iterations) > 5
    assert float(krosbl.nmse(res.x, p.x)) < 1e-2
    assert 0.3 < float(res.noise_var) / float(p.noise_var) < 3.0
    assert res.x.dtype == jnp.float64 and res.support.shape == (216,)
    assert [g.shape for g in res.gamma_factors] == [(6,), (6,), (6,)]


def test_complex_path_agrees_with_real_path_on_real_data() -> None:
    with jax.enable_x64(True):
        p = _problem(6, 20.0)
    y, fs = np.asarray(p.y), [np.asarray(a) for a in p.factors]
    nv = float(p.noise_var)
    for method in ("svd", "classic"):
        real = krosbl.fit(y, fs, method=method, noise_var=nv, max_iter=40)
        cplx = krosbl.fit(y.astype(complex), [a.astype(complex) for a in fs], method=method,
                          noise_var=nv, max_iter=40)  # fmt: skip
        assert jnp.iscomplexobj(cplx.x) and not jnp.iscomplexobj(real.x)
        np.testing.assert_allclose(np.real(cplx.x), real.x, atol=1e-8)
        np.testing.assert_allclose(np.imag(cplx.x), 0.0, atol=1e-8)
        np.testing.assert_allclose(cplx.gamma, real.gamma, rtol=1e-6, atol=1e-12)


def test_clear_errors() -> None:
    rng = np.random.default_rng(0)
    fs = [rng.normal(size=(m, n)) for m, n in zip(MEAS, SIZES)]
    y = rng.normal(size=120)
    with pytest.raises(ValueError, match=r"y must have shape \(M,\) with M = prod\(m_i\) = 120"):
        krosbl.fit(y[:100], fs)
    with pytest.raises(ValueError, match="factor 1 must be a matrix"):
        krosbl.fit(y, [fs[0], fs[1].ravel(), fs[2]])
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        krosbl.fit(bad, fs)
    with pytest.raises(ValueError, match="factor 2 contains NaN"):
        krosbl.fit(y, [fs[0], fs[1], np.full((6, 6), np.inf)])
    with pytest.raises(ValueError, match="support of x would be empty"):
        krosbl.fit(np.zeros(120), fs)
    with pytest.raises(ValueError, match="noise_var must be finite and positive"):
        krosbl.fit(y, fs, noise_var=-1.0)
    with pytest.raises(ValueError, match="unknown method"):
        krosbl.fit(y, fs, method="lasso")
    with pytest.raises(ValueError, match="needs sparsity or noise_var"):
        krosbl.fit(y, fs, method="komp")
    with pytest.raises(ValueError, match=r"sparsity\[0\] = 5 must be between 1 and"):
        krosbl.fit(y, fs, method="komp", sparsity=(5, 1, 1))
    with pytest.raises(ValueError, match=r"prune_tol must be a number in \[0, 1\) or one per mode"):
        krosbl.fit(y, fs, prune_tol=(0.1, 0.1))
    with pytest.raises(ValueError, match="prune_tol must be"):
        krosbl.fit(y, fs, prune_tol=1.5)
    with pytest.raises(ValueError, match="batch size 3, y has 2"):
        krosbl.fit_batch(np.ones((2, 120)), [np.ones((3, 4, 6)), fs[1], fs[2]])
