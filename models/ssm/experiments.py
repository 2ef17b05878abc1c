"""Experiments of the PaRIS particle Gibbs entry (registered in bayes.experiments)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bayes.experiments import RunContext, experiment

if TYPE_CHECKING:
    import numpy as np

#: True parameters of the scalar linear Gaussian model used by the experiments
#: (``phi``; the model's ``theta`` holds ``atanh_phi``, see ``ssm.scalar_theta``).
LGSSM_THETA = {"phi": 0.8, "log_sigma_x": 0.0, "log_sigma_y": -0.3}


def _lgssm_setup(seed: int, num_steps: int):
    import jax
    from bayes.models import ssm

    theta = ssm.scalar_theta(**LGSSM_THETA)
    _, ys = ssm.simulate(jax.random.key(seed), ssm.scalar_matrices(theta), num_steps)
    return theta, ys, ssm.linear_gaussian_ssm(ssm.scalar_matrices)


def _lag_one(xp, x, t):
    return xp[0] * x[0]


def _lag_one_truth(theta, ys) -> float:
    from bayes.models import ssm

    sm = ssm.rts_smoother(ssm.scalar_matrices(theta), ys)
    return float((sm.cross_covs[:, 0, 0] + sm.means[:-1, 0] * sm.means[1:, 0]).sum())


def paris_variance_by_length(
    rng_key, num_sets: int, num_reps: int, num_particles: int, max_length: int
) -> np.ndarray:
    """Variance of PaRIS over replications for every prefix length, per data set.

    PaRIS is online: one run's running estimates :math:`\\sum_i W_t^i \\tau_t^i`
    estimate the functional :math:`\\sum_{s \\le t} x_{s-1}x_s` of every prefix
    :math:`y_{0:t}`. ``num_sets`` independent data sets of length ``max_length``
    (from :data:`LGSSM_THETA`) get ``num_reps`` runs each (exact backward draws,
    ``K = 2``); averaging over data sets matters because one data set's prefixes
    weigh its own stretches of large :math:`|x|`.

    Returns:
        Unbiased (``ddof=1``) variances over the replications, a float array of shape
            ``(num_sets, max_length - 1)`` for the prefix lengths ``2..max_length``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from bayes.inference.smc import paris
    from bayes.models import ssm

    theta = ssm.scalar_theta(**LGSSM_THETA)
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)

    def running_estimates(ys, key):
        k0, k1 = jax.random.split(key)
        state = paris.init(k0, model, theta, ys[0], num_particles, _lag_one)

        def body(state, inputs):
            k, y, t = inputs
            state, _ = paris.step(k, state, model, theta, y, t, _lag_one)
            return state, paris.estimate(state)

        steps = (jax.random.split(k1, max_length - 1), ys[1:], jnp.arange(1, max_length))
        return jax.lax.scan(body, state, steps)[1]

    k_data, k_runs = jax.random.split(rng_key)
    mats = ssm.scalar_matrices(theta)
    data_sets = jax.vmap(lambda k: ssm.simulate(k, mats, max_length)[1])(
        jax.random.split(k_data, num_sets)
    )
    runs = jax.jit(
        jax.vmap(
            lambda ys, k: jax.vmap(lambda kk: running_estimates(ys, kk))(
                jax.random.split(k, num_reps)
            )
        )
    )
    est = np.asarray(runs(data_sets, jax.random.split(k_runs, num_sets)), dtype=float)
    return est.var(axis=1, ddof=1)


def loglog_slope(per_set, lengths, min_length: int) -> tuple[float, float]:
    """Least-squares slope of log(mean variance) on log T for ``T >= min_length``.

    Args:
        per_set: Variances ``(num_sets, len(lengths))``.
        lengths: Prefix lengths.
        min_length: Smallest length fitted (past the constant contribution of the
            final filter).

    Returns:
        ``(slope, standard error)``, the error by jackknife over data sets (their
            spread dominates that of the replications).
    """
    import numpy as np

    fit = lengths >= min_length

    def slope_of(curve):
        return float(np.polyfit(np.log(lengths[fit]), np.log(curve[fit]), 1)[0])

    num_sets = per_set.shape[0]
    leave_one_out = np.array(
        [slope_of((per_set.sum(0) - per_set[i]) / (num_sets - 1)) for i in range(num_sets)]
    )
    return slope_of(per_set.mean(0)), float(np.sqrt((num_sets - 1) * leave_one_out.var()))


@experiment(
    "paris-bias",
    "PaRIS vs PPG on a linear Gaussian model: bias, variance and MSE against the Kalman value",
)
def paris_bias(ctx: RunContext) -> dict[str, Any]:
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from bayes.inference.smc import csmc, paris

    T = 40 if ctx.quick else 100
    sizes = [16, 64] if ctx.quick else [16, 64, 256]
    reps = 100 if ctx.quick else 400
    num_sweeps = 6 if ctx.quick else 10
    burnins = [0, 1, 3] if ctx.quick else [0, 2, 5]
    # Variance in T: independent data sets x replications x prefixes up to T_max. The
    # spread between data sets dominates the error, so many sets with few replications
    # each (4 per set gives unbiased per-set variances).
    num_sets, var_reps = (64, 4) if ctx.quick else (1024, 4)
    var_particles, max_length = (32, 160) if ctx.quick else (64, 400)
    theta, ys, model = _lgssm_setup(ctx.seed, T)
    truth = _lag_one_truth(theta, ys)
    key = jax.random.key(ctx.seed + 1)

    def paris_runs(ys, n, key):
        fn = jax.jit(
            jax.vmap(
                lambda k: paris.run_paris(model, theta, ys, _lag_one, rng_key=k, num_particles=n)
            )
        )
        return np.asarray(fn(jax.random.split(key, reps)).estimate, dtype=float)

    def ppg_runs(ys, n, key):
        fn = jax.jit(
            jax.vmap(
                lambda k: (
                    csmc.run_ppg(
                        model,
                        theta,
                        ys,
                        _lag_one,
                        rng_key=k,
                        num_particles=n,
                        num_sweeps=num_sweeps,
                    ).estimates
                )
            )
        )
        return np.asarray(fn(jax.random.split(key, reps)), dtype=float)

    def summary(est: np.ndarray) -> dict[str, float]:
        bias = float(est.mean() - truth)
        var = float(est.var())
        return {"bias": bias, "bias_se": float(est.std() / np.sqrt(est.size)), "var": var,
                "mse": bias**2 + var}  # fmt: skip

    by_size = {}
    for n in ctx.track(sizes, total=len(sizes), desc="particles"):
        key, k1, k2 = jax.random.split(key, 3)
        p = paris_runs(ys, n, k1)
        sweeps = ppg_runs(ys, n, k2)  # (reps, num_sweeps + 1); column 0 is PaRIS
        entry = {"paris": summary(p)}
        for k0 in burnins:
            entry[f"ppg_k0={k0}"] = summary(sweeps[:, 1 + k0 :].mean(1))
        by_size[n] = entry
        ctx.log(f"N={n}: PaRIS bias {entry['paris']['bias']:.3f}, "
                f"PPG bias {entry[f'ppg_k0={burnins[-1]}']['bias']:.3f}")  # fmt: skip

    key, k_var = jax.random.split(key)
    per_set = paris_variance_by_length(k_var, num_sets, var_reps, var_particles, max_length)
    lengths = np.arange(2, max_length + 1)
    variances = per_set.mean(0)
    slope, slope_se = loglog_slope(per_set, lengths, max_length // 8)
    # Local slopes on the two halves of the fitted range: equal if the growth is a power.
    half = max_length // 2 - 1
    early = loglog_slope(per_set[:, :half], lengths[:half], max_length // 8)
    late = loglog_slope(per_set, lengths, max_length // 2)
    marks = (max_length // 8, max_length // 2, max_length)
    per_length = {int(n): per_set[:, n - 2] for n in marks}
    ctx.log(
        f"variance log-log slope in T: {slope:.3f} +- {slope_se:.3f} "
        f"(halves {early[0]:.3f} +- {early[1]:.3f}, {late[0]:.3f} +- {late[1]:.3f})"
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = list(by_size[sizes[0]])
    for label in labels:
        bias = [abs(by_size[n][label]["bias"]) for n in sizes]
        err = [by_size[n][label]["bias_se"] for n in sizes]
        axes[0].errorbar(sizes, bias, yerr=err, marker="o", label=label, capsize=3)
    axes[0].set(xscale="log", xlabel="N", ylabel="|bias|", title=f"bias, T={T}")
    axes[0].set_xticks(sizes, [str(n) for n in sizes])
    axes[0].minorticks_off()
    axes[0].legend(fontsize=8)
    axes[1].loglog(lengths, variances, "-", label=f"PaRIS variance ({num_sets} data sets)")
    ref = variances[-1] * lengths / lengths[-1]
    axes[1].loglog(lengths, ref, "k--", label="linear in T")
    axes[1].loglog(lengths, variances[-1] * (lengths / lengths[-1]) ** 2, "k:",
                   label="quadratic in T")  # fmt: skip
    axes[1].axvline(max_length // 8, color="0.7", lw=0.8)
    axes[1].set(xlabel="T", ylabel="variance",
                title=f"N={var_particles}, slope {slope:.2f} +- {slope_se:.2f}")  # fmt: skip
    axes[1].legend(fontsize=8)
    ctx.savefig(fig, "paris_bias")

    deepest = f"ppg_k0={burnins[-1]}"
    return {
        "truth": truth,
        "num_steps": T,
        "replications": reps,
        "num_sweeps": num_sweeps,
        "by_num_particles": by_size,
        "variance_by_length": {n: float(v.mean()) for n, v in per_length.items()},
        # Variance / T with its standard error over data sets: constant if linear.
        "variance_over_T": {
            n: [float(v.mean() / n), float(v.std(ddof=1) / np.sqrt(num_sets) / n)]
            for n, v in per_length.items()
        },
        "variance_num_particles": var_particles,
        "variance_num_data_sets": num_sets,
        "variance_replications_per_set": var_reps,
        "variance_slope_in_T": slope,
        "variance_slope_se": slope_se,
        "variance_slope_halves": {"first": list(early), "second": list(late)},
        "ppg_bias_below_paris": {
            n: abs(by_size[n][deepest]["bias"]) < abs(by_size[n]["paris"]["bias"]) for n in sizes
        },
        "paris_bias_falls_with_N": abs(by_size[sizes[-1]]["paris"]["bias"])
        < abs(by_size[sizes[0]]["paris"]["bias"]),
    }


@experiment(
    "paris-mle",
    "MLE of linear Gaussian dynamics by stochastic approximation with PaRIS and PPG scores",
)
def paris_mle(ctx: RunContext) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import optax
    from bayes.inference.smc import learning
    from bayes.models import ssm
    from scipy import optimize

    T = 100 if ctx.quick else 1000
    iters = 300 if ctx.quick else 2000
    n = 32 if ctx.quick else 64
    _, ys, _ = _lgssm_setup(ctx.seed, T)
    # The observation noise is known: with short series its MLE can sit on the
    # boundary (sigma_y -> 0), which says nothing about the samplers.
    sigma_y = jnp.asarray(LGSSM_THETA["log_sigma_y"])

    def to_matrices(th):
        return ssm.scalar_matrices({**th, "log_sigma_y": sigma_y})

    model = ssm.linear_gaussian_ssm(to_matrices)
    # Unconstrained coordinates (phi = tanh(atanh_phi)): the iterates cannot leave the
    # stationary region, and errors are measured where the optimiser moves.
    names = ["atanh_phi", "log_sigma_x"]

    def nll(v):
        return -ssm.kalman_loglik(to_matrices(dict(zip(names, v))), ys)

    nll_jit = jax.jit(jax.value_and_grad(nll))

    def fun(v):
        value, grad = nll_jit(jnp.asarray(v, dtype=jnp.float32))
        return float(value), np.asarray(grad, dtype=float)

    bounds = [(-5, 5), (-3, 3)]
    res = optimize.minimize(fun, np.array([0.5, 0.0]), jac=True, method="L-BFGS-B",
                            bounds=bounds)  # fmt: skip
    exact = dict(zip(names, res.x.tolist()))
    start_values = {"atanh_phi": float(np.arctanh(0.3)), "log_sigma_x": -0.7}
    start = {k: jnp.asarray(v) for k, v in start_values.items()}
    schedule = optax.exponential_decay(0.05, iters, 0.1)
    results, traces = {}, {}
    for method in ctx.track(["paris", "ppg"], total=2, desc="methods"):
        fit = jax.jit(
            lambda k, m=method: learning.fit_mle(
                model, start, ys, rng_key=k, num_iterations=iters, optimizer=optax.adam(schedule),
                method=m, num_particles=n,
            )
        )  # fmt: skip
        out = fit(jax.random.key(ctx.seed + 7))
        trace = {k: np.asarray(v, dtype=float) for k, v in out.trace.items()}
        # Polyak-Ruppert average of the last quarter of the iterates.
        avg = {k: float(v[-iters // 4 :].mean()) for k, v in trace.items()}
        err = max(abs(avg[k] - exact[k]) for k in names)
        phi = float(np.tanh(trace["atanh_phi"][-iters // 4 :]).mean())
        results[method] = {"estimate": avg, "phi": phi, "max_abs_error": err}
        traces[method] = trace
        ctx.log(f"{method}: {avg} (max error {err:.3f})")
    start_err = max(abs(float(start[k]) - exact[k]) for k in names)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    shown = {"atanh_phi": (np.tanh, "phi = tanh(atanh_phi)"), "log_sigma_x": (None, "log_sigma_x")}
    for ax, name in zip(axes, names):
        fn, title = shown[name]
        fn = fn if fn is not None else (lambda v: v)
        for method, style in (("paris", "C0"), ("ppg", "C1")):
            ax.plot(fn(traces[method][name]), color=style, lw=0.8, label=method)
        ax.axhline(fn(exact[name]), color="k", ls="--", label="exact MLE")
        ax.set(title=title, xlabel="iteration")
    axes[0].legend(fontsize=8)
    ctx.savefig(fig, "paris_mle")
    return {
        "num_steps": T,
        "num_iterations": iters,
        "num_particles": n,
        "exact_mle": exact,
        "exact_mle_phi": float(np.tanh(exact["atanh_phi"])),
        "start_max_abs_error": start_err,
        "paris": results["paris"],
        "ppg": results["ppg"],
    }


@experiment(
    "paris-msc",
    "Markov score climbing with PPG: Gaussian Markov smoother for stochastic volatility",
)
def paris_msc(ctx: RunContext) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import optax
    from bayes.inference.smc import learning, paris
    from bayes.models import ssm

    T = 40 if ctx.quick else 200
    iters = 600 if ctx.quick else 3000
    n_ref = 500 if ctx.quick else 2000
    theta = {"mu": jnp.asarray(-1.0), "atanh_phi": jnp.arctanh(0.9), "log_sigma": jnp.log(0.4)}
    model = ssm.stochastic_volatility()
    xs, ys = ssm.simulate_ssm(
        jax.random.key(ctx.seed), model, theta, T,
        lambda k, x, t, th: jnp.exp(0.5 * x) * jax.random.normal(k, (1,)),
    )  # fmt: skip
    family, lam0 = learning.gaussian_markov_family(T)
    fit = jax.jit(
        lambda k: learning.fit_msc(
            model, theta, ys, family, lam0, rng_key=k, num_iterations=iters,
            optimizer=optax.adam(optax.exponential_decay(0.05, iters, 0.1)), num_particles=32,
        )
    )  # fmt: skip
    out = fit(jax.random.key(ctx.seed + 3))
    # Polyak average of the last quarter of the variational parameters.
    lam = jax.tree.map(lambda v: v[-iters // 4 :].mean(0), out.trace)
    q_mean, q_sd = (np.asarray(a, dtype=float) for a in learning.gaussian_markov_marginals(lam))

    eye = jnp.eye(T)

    def moments(xp, x, t):
        return jnp.stack([eye[t] * x[0], eye[t] * x[0] ** 2])

    ref = jax.jit(
        lambda k: paris.run_paris(
            model, theta, ys, moments, rng_key=k, num_particles=n_ref, num_backward=2,
            initial_fn=lambda x0: jnp.stack([eye[0] * x0[0], eye[0] * x0[0] ** 2]),
        ).estimate
    )(jax.random.key(ctx.seed + 4))  # fmt: skip
    ref = np.asarray(ref, dtype=float)
    s_mean = ref[0]
    s_sd = np.sqrt(np.maximum(ref[1] - ref[0] ** 2, 1e-12))
    z = (q_mean - s_mean) / s_sd
    fig, ax = plt.subplots(figsize=(8, 3.4))
    t = np.arange(T)
    ax.fill_between(t, s_mean - 2 * s_sd, s_mean + 2 * s_sd, color="C0", alpha=0.25)
    ax.plot(t, s_mean, "C0", label=f"particle smoother (N={n_ref})")
    ax.plot(t, q_mean, "C1", label="MSC variational mean")
    ax.plot(t, q_mean - 2 * q_sd, "C1--", lw=0.8)
    ax.plot(t, q_mean + 2 * q_sd, "C1--", lw=0.8, label="variational ±2 sd")
    ax.plot(t, np.asarray(xs[:, 0]), "k.", ms=3, label="true states")
    ax.set(xlabel="t", ylabel="log-volatility")
    ax.legend(fontsize=8)
    ctx.savefig(fig, "paris_msc")
    return {
        "num_steps": T,
        "num_iterations": iters,
        "mean_abs_z": float(np.mean(np.abs(z))),
        "max_abs_z": float(np.max(np.abs(z))),
        "sd_ratio_median": float(np.median(q_sd / s_sd)),
    }


@experiment(
    "smc-evidence",
    "Tempered SMC on a conjugate model: log evidence vs analytic, posterior mean vs NUTS",
)
def smc_evidence(ctx: RunContext) -> dict[str, Any]:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from bayes.models.conjugate import exact_posterior, model, simulate
    from scipy import stats

    import bayes

    n_obs = 30
    y = simulate(n_obs, seed=ctx.seed)
    exact_logz = float(stats.multivariate_normal(np.zeros(n_obs), np.eye(n_obs) + 100.0).logpdf(y))
    mean, sd = exact_posterior(y)
    chains, particles = (4, 500) if ctx.quick else (8, 2000)
    results = {}
    for kernel in ctx.track(["rw", "hmc"], total=2, desc="kernels"):
        idata = bayes.sample(
            model, {"y": y}, method="smc", num_chains=chains, num_samples=particles,
            num_particles=particles, kernel=kernel, seed=ctx.seed, progress=False,
        )  # fmt: skip
        logz = np.asarray(json.loads(idata.posterior.attrs["log_evidence_per_chain"]))
        draws = np.asarray(idata.posterior["mu"])
        results[kernel] = {
            "log_evidence": float(logz.mean()),
            "log_evidence_se": float(logz.std(ddof=1) / np.sqrt(chains)),
            "posterior_mean": float(draws.mean()),
            "posterior_sd": float(draws.std()),
            "log_evidence_per_chain": logz.tolist(),
        }
    nuts = bayes.sample(model, {"y": y}, method="nuts", num_chains=2, num_warmup=300,
                        num_samples=500, seed=ctx.seed, progress=False)  # fmt: skip
    nuts_draws = np.asarray(nuts.posterior["mu"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, kernel in enumerate(results):
        z = results[kernel]["log_evidence_per_chain"]
        ax.plot(np.full(len(z), i), z, "o", alpha=0.6, label=f"SMC ({kernel}) runs")
    ax.axhline(exact_logz, color="k", ls="--", label="analytic")
    ax.set(xticks=[0, 1], xticklabels=list(results), ylabel="log evidence")
    ax.legend(fontsize=8)
    ctx.savefig(fig, "smc_evidence")
    return {
        "exact_log_evidence": exact_logz,
        "exact_posterior_mean": mean,
        "exact_posterior_sd": sd,
        "nuts_posterior_mean": float(nuts_draws.mean()),
        "smc": results,
    }
