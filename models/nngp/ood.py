"""The ``nngp-ood`` experiment: digits classifiers under corruption and a held-out class.

Four classifiers share one split of scikit-learn's digits (classes 0-8; digit 9
held out): the one-hot regression NNGP and Student-t process (temperature tuned
on validation data), and the sparse variational Gaussian and Student-t
processes with a softmax likelihood (:mod:`~bayes.models.nngp.svtp`), scored with
their own predictive (temperature 1) and, for comparison, with a tuned one.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from bayes._blas import serial_blas

from .regression import fit_hyperparameters, init_params

__all__ = ["ood_classification"]

LABELS = {
    "gaussian": "NNGP (one-hot regression)",
    "inverse_gamma": "t process (one-hot regression)",
    "svgp": "sparse variational GP (softmax)",
    "svtp": "sparse variational t process (softmax)",
}


def _regression_probs(params, family, s_train, y_train, x_eval, *, depth, key, num_samples):
    """Class probabilities of a one-hot regression classifier, as a function of tau."""
    from .classification import class_probabilities, inverse_gamma_scale_draws
    from .gp import gaussian_predict, gp_fit, inverse_gamma_posterior
    from .kernels import kernel_diag, kernel_matrix
    from .regression import constrain

    p = constrain(params)
    kw = dict(weight_variance=p["weight_variance"], bias_variance=p["bias_variance"], depth=depth)
    fit = gp_fit(kernel_matrix(s_train, **kw), y_train, noise_variance=p["noise_variance"])
    mean, unit_var = gaussian_predict(
        fit, kernel_matrix(s_train, x_eval, **kw), kernel_diag(x_eval, **kw)
    )
    m = x_eval.shape[0]
    k1, k2 = jax.random.split(key)
    if family == "gaussian":
        scales = np.full((num_samples, m), float(p["scale"]))
    else:
        a_n, b_n = inverse_gamma_posterior(fit, concentration=p["concentration"], rate=p["rate"])
        scales = inverse_gamma_scale_draws(
            a_n, b_n, rng_key=k1, num_samples=num_samples, num_rows=m
        )
    return lambda tau: np.asarray(
        class_probabilities(mean, unit_var, scales, rng_key=k2, temperature=tau)
    )


def _metrics(probs, y):
    from .classification import expected_calibration_error

    return {
        "accuracy": float((probs.argmax(1) == y).mean()),
        "nll": float(-np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)))),
        "ece": expected_calibration_error(probs, y),
        "mean_confidence": float(probs.max(1).mean()),
    }


def _entropy(probs):
    return -np.sum(probs * np.log(np.maximum(probs, 1e-12)), axis=1)


def _held_out(p_in, p_out):
    from sklearn.metrics import roc_auc_score

    h_in, h_out = _entropy(p_in), _entropy(p_out)
    labels = np.r_[np.zeros(len(h_in)), np.ones(len(h_out))]
    return {
        "mean_entropy_in": float(h_in.mean()),
        "mean_entropy_out": float(h_out.mean()),
        "auroc_entropy": float(roc_auc_score(labels, np.r_[h_in, h_out])),
        "mean_max_prob_out": float(p_out.max(1).mean()),
    }, h_out


def ood_classification(ctx: Any, **overrides: Any) -> dict[str, Any]:
    """Digits: NNGP vs Student-t process classifiers, clean, corrupted and held-out class.

    ``overrides`` replace the settings of the mode (``n_train``, ``n_eval``, ``steps``,
    ``sv``, ``noise_levels``), e.g. for a small-training-set or stronger-shift run.
    """
    with serial_blas():  # 200-1000 point factorizations: BLAS threads only spin
        return _ood(ctx, overrides)


def _ood(ctx: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_digits

    from .classification import one_hot_targets
    from .svtp import svtp, svtp_class_probabilities
    from .svtp_train import svtp_fit

    if ctx.quick:
        settings = dict(n_train=200, n_eval=150, steps=30)
        settings["sv"] = dict(num_inducing=32, num_steps=300, batch_size=64)
    else:
        settings = dict(n_train=1000, n_eval=180, steps=150)
        settings["sv"] = dict(num_inducing=100, num_steps=3000, batch_size=128)
    settings["noise_levels"] = [0.0, 0.5, 1.0, 2.0]
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    settings.update(overrides)
    n_train, n_eval, steps, sv = (settings[k] for k in ("n_train", "n_eval", "steps", "sv"))
    noise_levels = [float(v) for v in settings["noise_levels"]]
    num_samples, depth, num_classes, held_out = 128, 2, 9, 9
    digits = load_digits()
    x_all, labels = digits.data / 16.0, digits.target
    rng = np.random.default_rng(ctx.seed)
    inside = rng.permutation(np.flatnonzero(labels != held_out))
    # validation, test and held-out-class sets share one size: one compiled predictor
    tr, va = inside[:n_train], inside[n_train : n_train + n_eval]
    te = inside[n_train + n_eval : n_train + 2 * n_eval]
    mu, sd = x_all[tr].mean(0), x_all[tr].std()
    x_all = (x_all - mu) / sd
    y_train = one_hot_targets(labels[tr], num_classes)
    x_ood = x_all[labels == held_out][:n_eval]
    noise = rng.standard_normal(x_all[te].shape)
    corrupted = {lvl: x_all[te] + lvl * noise for lvl in noise_levels}
    taus = np.geomspace(0.01, 3.0, 30)
    key = jax.random.key(ctx.seed)
    start = rng.choice(n_train, sv["num_inducing"], replace=False)  # shared by both SV models

    def evaluate(probs_fn, fixed_tau=None):
        """Metrics at the validation-tuned temperature (and at ``fixed_tau`` if given)."""
        val_fn = probs_fn(x_all[va])
        tau = float(min(taus, key=lambda t: _metrics(val_fn(t), labels[va])["nll"]))
        fns = {lvl: probs_fn(xc) for lvl, xc in corrupted.items()}
        res = {"temperature": tau if fixed_tau is None else fixed_tau, "tuned_temperature": tau}
        use = tau if fixed_tau is None else fixed_tau
        res["corruption"] = {str(lvl): _metrics(fn(use), labels[te]) for lvl, fn in fns.items()}
        if fixed_tau is not None:
            res["corruption_tuned"] = {
                str(lvl): _metrics(fn(tau), labels[te]) for lvl, fn in fns.items()
            }
        res["held_out_class"], h_out = _held_out(fns[0.0](use), probs_fn(x_ood)(use))
        return res, h_out

    results: dict[str, Any] = {}
    entropies: dict[str, np.ndarray] = {}
    families = ["gaussian", "inverse_gamma", "svgp", "svtp"]
    for family in ctx.track(families, total=len(families), desc="nngp-ood"):
        if family in ("gaussian", "inverse_gamma"):
            with jax.enable_x64(True):
                params, _ = fit_hyperparameters(
                    x_all[tr], y_train, family=family, depth=depth, num_steps=steps,
                    init=init_params(
                        family, weight_variance=2.0, bias_variance=0.1, noise_variance=0.1
                    ),
                )  # fmt: skip

                def probs_fn(x, params=params, family=family):
                    return _regression_probs(
                        params, family, x_all[tr], y_train, x,
                        depth=depth, key=key, num_samples=num_samples,
                    )  # fmt: skip

                res, h_out = evaluate(probs_fn)
        else:
            xf = x_all.astype(np.float32)
            model = svtp(
                xf[tr][start], num_classes, depth=depth, jitter=1e-5,
                process="gaussian" if family == "svgp" else "student_t",
            )  # fmt: skip
            fit = svtp_fit(
                model, xf[tr], labels[tr], rng_key=key, num_steps=sv["num_steps"],
                learning_rate=0.02, batch_size=sv["batch_size"],
            )  # fmt: skip

            def probs_fn(x, fit=fit):
                x = np.asarray(x, np.float32)
                return lambda tau: np.asarray(
                    svtp_class_probabilities(
                        fit, x, rng_key=key, num_samples=num_samples, temperature=tau
                    ),
                    np.float64,
                )

            res, h_out = evaluate(probs_fn, fixed_tau=1.0)
            trace = np.asarray(fit.elbo_trace)
            res["final_elbo"] = float(trace[-50:].mean())
            res["initial_elbo"] = float(trace[:50].mean())
            res["fitted"] = {
                k: float(v) for k, v in fit.params.items() if np.ndim(v) == 0
            }  # learned kernel variances and q(s) (or the scale)
        results[family] = res
        entropies[family] = h_out
        ctx.log(f"{LABELS[family]}: tau={res['temperature']:.3g} {res['corruption']}")

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for family in results:
        for ax, m in zip(axes[:3], ("accuracy", "nll", "ece")):
            curve = [results[family]["corruption"][str(lvl)][m] for lvl in noise_levels]
            ax.plot(noise_levels, curve, "o-", label=LABELS[family])
            ax.set_xlabel("pixel noise sd (standardized)")
            ax.set_title(m)
        axes[3].hist(entropies[family], bins=30, alpha=0.4, density=True, label=LABELS[family])
    axes[0].legend(fontsize=7)
    axes[3].set_title("predictive entropy on the held-out digit 9")
    axes[3].legend(fontsize=6)
    ctx.savefig(fig, "ood")
    top = str(noise_levels[-1])

    def gain(base, alt, metric, key="corruption"):
        return results[base][key][top][metric] - results[alt][key][top][metric]

    return {
        "models": results,
        "n_train": n_train,
        "held_out_class": held_out,
        "noise_levels": noise_levels,
        "sparse_variational": sv,
        "nll_gain_at_max_noise": gain("gaussian", "inverse_gamma", "nll"),
        "sv_nll_gain_at_max_noise": gain("svgp", "svtp", "nll"),
        "sv_ece_gain_at_max_noise": gain("svgp", "svtp", "ece"),
    }
