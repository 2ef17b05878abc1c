"""The ``nngp-ood`` experiment: digits classifiers under corruption and a held-out class.

Four classifiers share each split of scikit-learn's digits (classes 0-8; digit 9
held out): the one-hot regression NNGP and Student-t process (temperature tuned
on validation data), and the sparse variational Gaussian and Student-t
processes with a softmax likelihood (:mod:`~bayes.models.nngp.svtp`), scored with
their own predictive (temperature 1) and, for comparison, with a tuned one.

The quick mode runs one split, the full mode five. Because the models of a split
see the same test digits and the same corruption noise, the calibration claim is
measured by paired per-test-point differences of the NLL, Gaussian minus t
(positive: the t process better), with standard errors over the points and over
the splits.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

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
#: The compared pairs (Gaussian, t process) that differ only in the scale prior.
PAIRS = {"regression": ("gaussian", "inverse_gamma"), "sparse_variational": ("svgp", "svtp")}


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


def _point_log_probs(probs, y):
    return np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12))


class _Split(NamedTuple):
    """One split of the digits: standardized inputs and the index sets of its roles."""

    x: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    x_ood: np.ndarray
    corrupted: dict[float, np.ndarray]
    inducing: np.ndarray


def _make_split(x_raw, labels, seed, n_train, n_eval, noise_levels, num_inducing, held_out):
    rng = np.random.default_rng(seed)
    inside = rng.permutation(np.flatnonzero(labels != held_out))
    # validation, test and held-out-class sets share one size: one compiled predictor
    tr, va = inside[:n_train], inside[n_train : n_train + n_eval]
    te = inside[n_train + n_eval : n_train + 2 * n_eval]
    x = (x_raw - x_raw[tr].mean(0)) / x_raw[tr].std()
    noise = rng.standard_normal(x[te].shape)
    corrupted = {lvl: x[te] + lvl * noise for lvl in noise_levels}
    inducing = rng.choice(n_train, num_inducing, replace=False)  # shared by both SV models
    return _Split(x, labels, tr, va, te, x[labels == held_out][:n_eval], corrupted, inducing)


def _evaluate(probs_fn, sp: _Split, taus, fixed_tau=None):
    """Metrics at the validation-tuned temperature (and at ``fixed_tau`` if given).

    Returns the metrics and, for the paired comparisons across models, the log
    probability of the true class of every test digit at each noise level (at the
    temperature the model is scored with) and the entropies on the held-out class.
    """
    y_val, y_test = sp.labels[sp.val], sp.labels[sp.test]
    val_fn = probs_fn(sp.x[sp.val])
    tau = float(min(taus, key=lambda t: _metrics(val_fn(t), y_val)["nll"]))
    fns = {lvl: probs_fn(xc) for lvl, xc in sp.corrupted.items()}
    use = tau if fixed_tau is None else fixed_tau
    res: dict[str, Any] = {"temperature": use, "tuned_temperature": tau}
    probs = {lvl: fn(use) for lvl, fn in fns.items()}
    res["corruption"] = {str(lvl): _metrics(p, y_test) for lvl, p in probs.items()}
    if fixed_tau is not None:
        res["corruption_tuned"] = {str(lvl): _metrics(fn(tau), y_test) for lvl, fn in fns.items()}
    res["held_out_class"], h_out = _held_out(probs[0.0], probs_fn(sp.x_ood)(use))
    res["test_log_prob"] = {str(lvl): _point_log_probs(p, y_test) for lvl, p in probs.items()}
    res["entropy_out"] = h_out
    return res


def _fit_and_evaluate(family, sp: _Split, *, seed, depth, steps, sv, num_samples, num_classes):
    """Fit one classifier on one split and score it (one job of the experiment)."""
    from .classification import one_hot_targets
    from .svtp import svtp, svtp_class_probabilities
    from .svtp_train import svtp_fit

    taus = np.geomspace(0.01, 3.0, 30)
    key = jax.random.key(seed)
    x_tr, y_tr = sp.x[sp.train], sp.labels[sp.train]
    if family in ("gaussian", "inverse_gamma"):
        y_train = one_hot_targets(y_tr, num_classes)
        with jax.enable_x64(True):
            init = init_params(family, weight_variance=2.0, bias_variance=0.1, noise_variance=0.1)
            params, _ = fit_hyperparameters(
                x_tr, y_train, family=family, depth=depth, num_steps=steps, init=init
            )

            def probs_fn(x):
                return _regression_probs(
                    params, family, x_tr, y_train, x, depth=depth, key=key, num_samples=num_samples
                )

            return _evaluate(probs_fn, sp, taus)
    xf = sp.x.astype(np.float32)
    model = svtp(
        xf[sp.train][sp.inducing], num_classes, depth=depth, jitter=1e-5,
        process="gaussian" if family == "svgp" else "student_t",
    )  # fmt: skip
    fit = svtp_fit(
        model, xf[sp.train], y_tr, rng_key=key, num_steps=sv["num_steps"],
        learning_rate=0.02, batch_size=sv["batch_size"],
    )  # fmt: skip

    def sv_probs_fn(x):
        x = np.asarray(x, np.float32)
        return lambda tau: np.asarray(
            svtp_class_probabilities(fit, x, rng_key=key, num_samples=num_samples, temperature=tau),
            np.float64,
        )

    res = _evaluate(sv_probs_fn, sp, taus, fixed_tau=1.0)
    trace = np.asarray(fit.elbo_trace)
    res["final_elbo"] = float(trace[-50:].mean())
    res["initial_elbo"] = float(trace[:50].mean())
    # learned kernel variances and q(s) (or the scale)
    res["fitted"] = {k: float(v) for k, v in fit.params.items() if np.ndim(v) == 0}
    return res


def _mean_se(values) -> dict[str, Any]:
    v = np.asarray(values, float)
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
    return {"mean": float(v.mean()), "se": se}


def _paired(per_split, base, alt, noise_levels):
    """Per-test-point NLL differences ``base - alt`` (positive: ``alt`` better), paired.

    ``se_points`` treats all test points of all splits as independent; ``se_splits``
    is the standard error of the per-split means (it also carries the variation
    between splits, and is ``None`` with one split).
    """
    out = {}
    for lvl in map(str, noise_levels):
        diffs = [
            np.asarray(run[alt]["test_log_prob"][lvl]) - np.asarray(run[base]["test_log_prob"][lvl])
            for run in per_split
        ]
        pooled = np.concatenate(diffs)
        means = [float(d.mean()) for d in diffs]
        out[lvl] = {
            "mean": float(pooled.mean()),
            "se_points": float(pooled.std(ddof=1) / np.sqrt(len(pooled))),
            "se_splits": _mean_se(means)["se"],
            "per_split": means,
            "points": len(pooled),
        }
    return out


def ood_classification(ctx: Any, **overrides: Any) -> dict[str, Any]:
    """Digits: NNGP vs Student-t process classifiers, clean, corrupted and held-out class.

    ``overrides`` replace the settings of the mode (``n_train``, ``n_eval``, ``steps``,
    ``sv``, ``noise_levels``, ``num_splits``), e.g. for a small-training-set or
    stronger-shift run. Splits use the seeds ``ctx.seed, ctx.seed + 1, ...``; each
    (split, model) pair is one job of ``ctx.cached``, so an interrupted run resumes
    from the pairs it finished.
    """
    with serial_blas():  # 200-1000 point factorizations: BLAS threads only spin
        return _ood(ctx, overrides)


def _ood(ctx: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    if ctx.quick:
        settings = dict(n_train=200, n_eval=150, steps=30, num_splits=1)
        settings["sv"] = dict(num_inducing=32, num_steps=300, batch_size=64)
    else:
        settings = dict(n_train=500, n_eval=180, steps=150, num_splits=5)
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
    x_raw, labels = digits.data / 16.0, digits.target
    seeds = [ctx.seed + i for i in range(settings["num_splits"])]
    job_settings = dict(
        n_train=n_train, n_eval=n_eval, steps=steps, sv=sv, noise_levels=noise_levels,
        num_samples=num_samples, depth=depth, held_out=held_out,
    )  # fmt: skip

    def job(seed, family):
        sp = _make_split(
            x_raw, labels, seed, n_train, n_eval, noise_levels, sv["num_inducing"], held_out
        )
        return _fit_and_evaluate(
            family, sp, seed=seed, depth=depth, steps=steps, sv=sv,
            num_samples=num_samples, num_classes=num_classes,
        )  # fmt: skip

    # split-major: a run stopped part-way has every model for its first splits
    jobs = [(i, family) for i in range(len(seeds)) for family in LABELS]
    per_split: list[dict[str, Any]] = [{} for _ in seeds]
    for i, family in ctx.track(jobs, total=len(jobs), desc="nngp-ood"):
        res = ctx.cached(
            f"split{seeds[i]}-{family}",
            functools.partial(job, seeds[i], family),
            settings=dict(job_settings, split_seed=seeds[i], family=family),
        )
        per_split[i][family] = res
        ctx.log(f"split {seeds[i]}, {LABELS[family]}: tau={res['temperature']:.3g}")
    return _summarize(ctx, per_split, noise_levels, n_train, held_out, sv)


def _summarize(ctx, per_split, noise_levels, n_train, held_out, sv):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [str(lvl) for lvl in noise_levels]
    per_point = ("test_log_prob", "entropy_out")
    # mean and standard error over splits of every metric, per model and noise level
    summary = {
        family: {
            lvl: {
                m: _mean_se([run[family]["corruption"][lvl][m] for run in per_split])
                for m in ("accuracy", "nll", "ece", "mean_confidence")
            }
            for lvl in levels
        }
        for family in LABELS
    }
    held = {
        family: {
            m: _mean_se([run[family]["held_out_class"][m] for run in per_split])
            for m in per_split[0][family]["held_out_class"]
        }
        for family in LABELS
    }

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for family in LABELS:
        for ax, m in zip(axes[:3], ("accuracy", "nll", "ece")):
            curve = [summary[family][lvl][m] for lvl in levels]
            err = [c["se"] for c in curve] if len(per_split) > 1 else None
            ax.errorbar(
                noise_levels, [c["mean"] for c in curve], yerr=err, fmt="o-",
                capsize=2, label=LABELS[family],
            )  # fmt: skip
            ax.set_xlabel("pixel noise sd (standardized)")
            ax.set_title(m if len(per_split) == 1 else f"{m} (mean over {len(per_split)} splits)")
        h_out = np.concatenate([run[family]["entropy_out"] for run in per_split])
        axes[3].hist(h_out, bins=30, alpha=0.4, density=True, label=LABELS[family])
    axes[0].legend(fontsize=7)
    axes[3].set_title("predictive entropy on the held-out digit 9")
    axes[3].legend(fontsize=6)
    ctx.savefig(fig, "ood")
    top = levels[-1]

    def gain(base, alt, metric, key="corruption"):
        return float(
            np.mean([run[base][key][top][metric] - run[alt][key][top][metric] for run in per_split])
        )

    first = {f: {k: v for k, v in r.items() if k not in per_point} for f, r in per_split[0].items()}
    return {
        "models": first,
        "n_train": n_train,
        "held_out_class": held_out,
        "noise_levels": noise_levels,
        "sparse_variational": sv,
        "nll_gain_at_max_noise": gain("gaussian", "inverse_gamma", "nll"),
        "sv_nll_gain_at_max_noise": gain("svgp", "svtp", "nll"),
        "sv_ece_gain_at_max_noise": gain("svgp", "svtp", "ece"),
        "num_splits": len(per_split),
        "summary": summary,
        "summary_held_out_class": held,
        "paired_nll_gain": {
            pair: _paired(per_split, base, alt, noise_levels) for pair, (base, alt) in PAIRS.items()
        },
        # ECE is a statistic of a whole test set: paired by split only
        "paired_ece_gain": {
            pair: {
                lvl: _mean_se(
                    [
                        run[base]["corruption"][lvl]["ece"] - run[alt]["corruption"][lvl]["ece"]
                        for run in per_split
                    ]
                )
                for lvl in levels
            }
            for pair, (base, alt) in PAIRS.items()
        },
    }
