"""NIW core against ground truth: KL vs Monte Carlo, the closed-form local update vs
brute-force optimization, and a linear-Gaussian hierarchy with a known truth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bayes.models import niw as N
from scipy import stats


def _mc_kl(q: N.NIW, p: N.NIW, num: int, rng: np.random.Generator) -> tuple[float, float]:
    """Monte Carlo estimate of KL(q || p) and its standard error, with SciPy densities."""
    m_q, k_q, psi_q, n_q = (np.asarray(a, dtype=float) for a in q)
    m_p, k_p, psi_p, n_p = (np.asarray(a, dtype=float) for a in p)
    diag = psi_q.ndim == 1
    if diag:
        sig = stats.invgamma.rvs(
            float(n_q) / 2, scale=psi_q / 2, size=(num, psi_q.size), random_state=rng
        )
        mu = m_q + np.sqrt(sig / k_q) * rng.standard_normal(sig.shape)
        logq = stats.invgamma.logpdf(sig, n_q / 2, scale=psi_q / 2) + stats.norm.logpdf(
            mu, m_q, np.sqrt(sig / k_q)
        )
        logp = stats.invgamma.logpdf(sig, n_p / 2, scale=psi_p / 2) + stats.norm.logpdf(
            mu, m_p, np.sqrt(sig / k_p)
        )
        diff = (logq - logp).sum(axis=1)
    else:
        sigs = stats.invwishart.rvs(df=float(n_q), scale=psi_q, size=num, random_state=rng)
        chol = np.linalg.cholesky(sigs)
        mu = m_q + np.einsum("nij,nj->ni", chol, rng.standard_normal((num, m_q.size))) / np.sqrt(
            k_q
        )

        def log_normal(mean, kappa):
            r = np.linalg.solve(chol, (mu - mean)[..., None])[..., 0] * np.sqrt(kappa)
            logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1) - mean.size * np.log(
                kappa
            )
            return -0.5 * ((r**2).sum(1) + logdet + mean.size * np.log(2 * np.pi))

        s_last = np.moveaxis(sigs, 0, -1)
        diff = (
            stats.invwishart.logpdf(s_last, df=float(n_q), scale=psi_q)
            + log_normal(m_q, k_q)
            - stats.invwishart.logpdf(s_last, df=float(n_p), scale=psi_p)
            - log_normal(m_p, k_p)
        )
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(num))


def test_niw_kl_matches_monte_carlo(np_rng: np.random.Generator, x64) -> None:
    a = np_rng.standard_normal((3, 3))
    psi_q = a @ a.T + 3 * np.eye(3)
    psi_p = np.diag([2.0, 1.0, 4.0]) + 0.3
    q = N.NIW(jnp.array([0.5, -1.0, 2.0]), jnp.array(3.0), jnp.array(psi_q), jnp.array(9.0))
    p = N.NIW(jnp.array([0.0, 0.2, 1.0]), jnp.array(1.5), jnp.array(psi_p), jnp.array(6.0))
    exact = float(N.niw_kl(q, p))
    est, se = _mc_kl(q, p, 20_000, np_rng)
    assert abs(exact - est) < 4 * se, (exact, est, se)
    assert float(N.niw_kl(q, q)) == pytest.approx(0.0, abs=1e-9)

    qd = N.NIW(jnp.array([0.3, -0.4]), jnp.array(2.0), jnp.array([0.7, 2.5]), jnp.array(5.0))
    pd = N.NIW(jnp.array([0.0, 0.1]), jnp.array(0.5), jnp.array([1.0, 1.0]), jnp.array(3.0))
    exact = float(N.niw_kl(qd, pd))
    est, se = _mc_kl(qd, pd, 50_000, np_rng)
    assert abs(exact - est) < 4 * se, (exact, est, se)
    # The diagonal form is the full form of a product of independent 1-D NIWs.
    per_dim = [
        N.niw_kl(
            N.NIW(qd.mean[j : j + 1], qd.kappa, qd.psi[j : j + 1, None], qd.dof),
            N.NIW(pd.mean[j : j + 1], pd.kappa, pd.psi[j : j + 1, None], pd.dof),
        )
        for j in range(2)
    ]
    assert exact == pytest.approx(float(sum(per_dim)), rel=1e-10)


def _factorial_design(reps: int) -> np.ndarray:
    """Inputs (+-1)^3 repeated: columns orthogonal to each other and to the bias."""
    grid = np.array(np.meshgrid(*[[-1.0, 1.0]] * 3)).reshape(3, -1).T
    return np.tile(grid, (reps, 1))


def test_closed_form_local_update_matches_brute_force(np_rng: np.random.Generator, x64) -> None:
    """A network linear in its weights has an exactly quadratic NLL, so the closed form is
    the exact optimum of the local ELBO; find that optimum by brute force with Adam."""
    net = N.mlp((3, 1))
    sigma = 0.5
    lik = N.gaussian_likelihood(sigma, learn_noise=False)
    x = jnp.asarray(_factorial_design(2))
    theta_true = jnp.asarray(np_rng.standard_normal(net.num_params))
    y = net.apply(theta_true, x) + sigma * jnp.asarray(np_rng.standard_normal((x.shape[0], 1)))
    glob = N.NIW(
        jnp.asarray(np_rng.standard_normal(net.num_params)),
        jnp.array(2.0),
        jnp.array([0.5, 2.0, 1.0, 3.0]),
        jnp.array(4.0),
    )
    prec = N.expected_precision(glob)
    # MSE Hessian is 2 I on this design: one step of size 1/2 lands on the minimizer.
    quad = N.local_quadratic(
        net, lik, glob.mean, x, y, lik.init_params, num_steps=1, step_size=0.5, max_grad_norm=1e9
    )
    m, v = N.local_posterior(quad.m_bar, quad.curvature, glob.mean, prec)

    def neg_local_elbo(var):
        mean, log_v = var
        resid = y - net.apply(mean, x)
        feats = jax.jacobian(lambda th: net.apply(th, x)[:, 0])(mean)  # (N, D), constant
        enll = jnp.sum(resid**2 + feats**2 @ jnp.exp(log_v)[:, None]) / (2 * sigma**2)
        vv = jnp.exp(log_v)
        kl = 0.5 * jnp.sum(prec * (vv + (mean - glob.mean) ** 2) - log_v)
        return enll + kl

    opt = optax.adam(0.05)
    var = (glob.mean, jnp.zeros(net.num_params))

    @jax.jit
    def run(var):
        def body(carry, _):
            var, state = carry
            upd, state = opt.update(jax.grad(neg_local_elbo)(var), state, var)
            return (optax.apply_updates(var, upd), state), None

        return jax.lax.scan(body, (var, opt.init(var)), None, length=4000)[0][0]

    brute = run(var)
    np.testing.assert_allclose(m, brute[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(v, jnp.exp(brute[1]), rtol=1e-4)
    assert float(neg_local_elbo((m, jnp.log(v)))) <= float(neg_local_elbo(brute)) + 1e-8


def _hierarchy(net: N.Network, num_episodes: int, seed: int, mu, var, sigma):
    rng = np.random.default_rng(seed)
    grid = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    theta = mu + np.sqrt(var) * rng.standard_normal((num_episodes, net.num_params))
    x = np.broadcast_to(grid, (num_episodes, 4, 2))
    f = np.asarray(jax.vmap(net.apply)(jnp.asarray(theta), jnp.asarray(x)))[..., 0]
    ys = f + sigma * rng.standard_normal(f.shape)
    yq = f + sigma * rng.standard_normal(f.shape)
    return N.Episode(*(jnp.asarray(a, jnp.float32) for a in (x, ys[..., None], x, yq[..., None])))


@pytest.mark.slow
def test_linear_gaussian_hierarchy_recovers_global_mean_and_covariance() -> None:
    """theta_i ~ N(mu*, Sigma*), y = x'w_i + b_i + noise: the learned NIW mode approaches
    (mu*, Sigma*) as episodes grow, within Monte Carlo standard errors.

    On the orthogonal 2x2 design the per-episode least-squares fit is exact after one
    inner step, so the variational optimum is the empirical-Bayes estimate."""
    mu = np.array([1.0, -0.5, 0.3])
    var = np.array([0.5, 0.2, 0.8])
    sigma = 0.3
    net = N.mlp((2, 1))
    lik = N.gaussian_likelihood(sigma, learn_noise=False)
    # Per-episode least-squares weights have variance var + sigma^2 / 8 (8 points).
    spread = var + sigma**2 / 8
    errors = {}
    for num in (25, 400):
        data = _hierarchy(net, num, 7, mu, var, sigma)
        learner = N.niw_meta_learner(
            net, lik, optax.adam(0.05), num_inner_steps=1, inner_step_size=0.5,
            max_grad_norm=1e9, num_episodes=num, init_variance=1.0,
        )  # fmt: skip
        state, _ = N.meta_train(
            learner, lambda key, d=data: d, rng_key=jax.random.key(0), num_iterations=800,
            chunk=800,
        )  # fmt: skip
        mean, cov = N.niw_mode(N.global_niw(state.params))
        se_mean = np.sqrt(spread / num)
        se_cov = np.sqrt(2.0 / num) * spread
        z_mean = (np.asarray(mean) - mu) / se_mean
        z_cov = (np.asarray(cov) - var) / se_cov
        errors[num] = (np.abs(np.asarray(mean) - mu).sum(), np.abs(np.asarray(cov) - var).sum())
        assert np.all(np.abs(z_mean) < 4), (num, mean, z_mean)
        assert np.all(np.abs(z_cov) < 4), (num, cov, z_cov)
    assert errors[400][0] < errors[25][0] and errors[400][1] < errors[25][1], errors


def test_clipped_inner_steps_move_exactly_the_clip_on_a_steep_linear_loss() -> None:
    """On ``loss = w'theta`` with ``|w| = 1000`` every clipped step moves ``step_size * c``
    along ``-w / |w|``; unclipped it moves ``step_size * |w|``. Reptile's inner loop is
    clipped by default, so its adapted weights obey the same bound."""
    w = jnp.array([600.0, -800.0, 0.0])
    loss = lambda th: jnp.dot(w, th)  # noqa: E731
    theta = N.inner_sgd(loss, jnp.zeros(3), num_steps=7, step_size=0.1, max_grad_norm=2.0)
    np.testing.assert_allclose(theta, -7 * 0.1 * 2.0 * w / 1000.0, rtol=1e-6)
    free = N.inner_sgd(loss, jnp.zeros(3), num_steps=7, step_size=0.1)
    np.testing.assert_allclose(free, -7 * 0.1 * w, rtol=1e-6)

    net = N.mlp((1, 8, 1))
    lik = N.gaussian_likelihood(0.1)
    learner = N.reptile(net, lik, optax.sgd(1.0), num_inner_steps=5, inner_step_size=0.5,
                        max_grad_norm=1.0)  # fmt: skip
    state = learner.init(jax.random.key(0))
    x = jnp.linspace(-5.0, 5.0, 6)[:, None]
    ep = N.Episode(x[None], 1e4 * x[None], x[None], 1e4 * x[None])  # a very steep task
    new, info = learner.step(jax.random.key(1), state, ep)
    # Outer SGD at rate 1 moves theta to the adapted weights: at most 5 * 0.5 * 1 away.
    assert float(info["step_norm"]) <= 5 * 0.5 * 1.0 + 1e-5
    assert np.all(np.isfinite(np.asarray(new.theta)))


def test_predict_without_vi_draws_from_the_closed_form(np_rng: np.random.Generator) -> None:
    """With no VI steps, ``predict`` draws weights from the closed-form posterior of the
    support set under the prior mode; for a network linear in its weights the draws'
    outputs are Gaussian with mean ``x'm`` and variance ``sum_j x_j^2 v_j``."""
    net = N.mlp((3, 1))
    sigma = 0.5
    lik = N.gaussian_likelihood(sigma, learn_noise=False)
    learner = N.niw_meta_learner(
        net, lik, optax.adam(1e-3), num_inner_steps=1, inner_step_size=0.5, max_grad_norm=1e9,
        num_vi_steps=0, num_predict_samples=4000,
    )  # fmt: skip
    params = N.GlobalParams(
        mean=jnp.asarray(np_rng.standard_normal(4), jnp.float32),
        log_kappa=jnp.zeros(()),
        log_psi=jnp.log(jnp.array([0.5, 2.0, 1.0, 3.0])),
        log_dof=jnp.log(jnp.array(4.0)),
        lik=dict(lik.init_params),
    )
    state = N.NIWState(params, None)
    xs = jnp.asarray(_factorial_design(1), jnp.float32)
    ys = jnp.asarray(np_rng.standard_normal((8, 1)), jnp.float32)
    xq = jnp.asarray(np_rng.standard_normal((5, 3)), jnp.float32)
    draws = np.asarray(learner.predict(jax.random.key(3), state, xs, ys, xq))[..., 0]  # (S, 5)

    mu, sig = N.niw_mode(N.global_niw(params))
    quad = N.local_quadratic(net, lik, mu, xs, ys, params.lik, num_steps=1, step_size=0.5,
                             max_grad_norm=1e9)  # fmt: skip
    m, v = N.local_posterior(quad.m_bar, quad.curvature, mu, 1.0 / sig)
    feats = jnp.concatenate([jnp.ones((5, 1)), xq], axis=1)  # flat weights are (b, w)
    mean = np.asarray(feats @ m)
    var = np.asarray(feats**2 @ v)
    se = np.sqrt(var / draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * se), (draws.mean(0), mean, se)
    # Sample variance of S Gaussian draws: relative s.e. sqrt(2 / (S - 1)).
    rel = np.sqrt(2.0 / (draws.shape[0] - 1))
    assert np.all(np.abs(draws.var(0, ddof=1) / var - 1) < 4 * rel), (draws.var(0), var)


@pytest.mark.parametrize(("sizes", "activation"), [((2, 7, 5, 1), "relu"), ((3, 6, 4), "tanh")])
def test_mlp_gauss_newton_diag_matches_per_example_jacobians(x64, sizes, activation) -> None:
    net = N.mlp(sizes, activation)
    theta = net.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (9, sizes[0]))
    root = jax.random.normal(jax.random.key(2), (9, sizes[-1], sizes[-1]))
    hess = root @ root.transpose(0, 2, 1)  # one PSD output Hessian per point
    jac = jax.vmap(jax.jacrev(lambda th, xi: net.apply(th, xi[None])[0]), in_axes=(None, 0))(
        theta, x
    )
    brute = jnp.einsum("nad,nab,nbd->d", jac, hess, jac)
    np.testing.assert_allclose(net.gauss_newton_diag(theta, x, hess), brute, rtol=1e-10)
