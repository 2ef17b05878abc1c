"""Experiments of the NIW meta-learning entry (registered in bayes.experiments).

- ``niw-sine``: few-shot sinusoid and sine-or-line regression; NIW vs MAML
  (second and first order) vs Reptile at the same number of meta-iterations.
- ``niw-digits``: 5-way K-shot classification on rotated 8x8 digits; NIW vs
  MAML vs ProtoNet.
"""

from __future__ import annotations

from typing import Any

from bayes.experiments import RunContext, experiment

__all__ = ["DIGITS_PLANS", "NIW_DIGITS", "NIW_SINE", "SINE_PLANS", "niw_digits", "niw_sine"]


def _plan_name(ctx: RunContext) -> str:
    """``quick`` in quick mode, else the plan set by ``__main__`` (default ``full``)."""
    return "quick" if ctx.quick else getattr(ctx, "plan", "full")


# Sizes of each run: "quick" (tests, < 1 minute), "medium" (the docs' figures on a
# shared 2-core machine, ~15 minutes) and "full" (the protocol).
SINE_PLANS: dict[str, dict[str, Any]] = {
    "quick": {"settings": [("sine", 5)], "iterations": 200, "chunk": 100, "test": 100,
              "batch": 10},
    "medium": {"settings": [("sine", 5), ("sine", 10)], "iterations": 4000, "chunk": 500,
               "test": 600, "batch": 25},
    "full": {"settings": [("sine", 5), ("sine", 10), ("sine-or-line", 5)], "iterations": 4000,
             "chunk": 500, "test": 600, "batch": 25},
}  # fmt: skip
DIGITS_PLANS: dict[str, dict[str, Any]] = {
    "quick": {"shots": (5,), "iterations": 100, "chunk": 50, "test": 100},
    "medium": {"shots": (5,), "iterations": 1500, "chunk": 250, "test": 600},
    "full": {"shots": (1, 5), "iterations": 1500, "chunk": 250, "test": 600},
}
# NIW's inner loop on the sinusoid: Reptile's 10 steps at lr 0.01, and a floor on the
# curvature so that the closed-form posterior keeps the inner loop's solution (see
# docs/zoo/niw.md, "Why the curvature floor").
NIW_SINE = {"num_inner_steps": 10, "inner_step_size": 0.01, "curvature_clip": (1e5, 1e7)}
NIW_DIGITS = {"num_inner_steps": 10, "inner_step_size": 0.1, "curvature_clip": (1e5, 1e7)}

_COLORS = {"NIW": "C3", "MAML": "C0", "FOMAML": "C9", "Reptile": "C2", "ProtoNet": "C1"}


def _train_and_score(ctx, learners, sample, test, *, task, iterations, chunk, seed, calib=None):
    """Meta-train each learner, then score the test tasks; returns (results, states).

    Regression: every method's predictive noise scale is fitted on ``calib``
    (held-out meta-training tasks) so that its predictive variance, draws' spread
    plus noise, matches the squared error there. NIW is also scored with its
    meta-learned noise scale (``*_learned_noise``), which is fitted in-sample.
    """
    import jax
    import jax.numpy as jnp
    from bayes.models import niw as N

    results, states = {}, {}
    for i, learner in enumerate(learners):
        key = jax.random.fold_in(jax.random.key(seed), i)
        ctx.log(f"{learner.name}: {iterations} meta-iterations")
        state, record = N.meta_train(
            learner, sample, rng_key=key, num_iterations=iterations, chunk=chunk,
            progress=ctx.progress, desc=learner.name,
        )  # fmt: skip
        noise, extra = 0.0, {}
        if task == "regression":
            fit = N.evaluate(learner, state, calib, rng_key=key, task=task, noise_scale=1.0)
            noise = max(fit["mse"] - fit["epistemic_variance"], 1e-6) ** 0.5
            if learner.name == "NIW":
                learned = float(jnp.exp(state.params.lik["log_noise"]))
                own = N.evaluate(learner, state, test, rng_key=key, task=task, noise_scale=learned)
                extra = {"learned_noise_scale": learned, "nll_learned_noise": own["nll"],
                         "calibration_error_learned_noise": own["calibration_error"]}  # fmt: skip
        scores = N.evaluate(learner, state, test, rng_key=key, task=task, noise_scale=noise)
        scores.update(extra)
        scores["seconds_per_iteration"] = record["seconds_per_iteration"]
        scores["num_iterations"] = record["num_iterations"]
        if task == "regression":
            scores["noise_scale"] = noise
        results[learner.name] = scores
        states[learner.name] = (learner, state, noise)
    return results, states


def _sine_figures(ctx, name, states, test, levels):
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
    grid = np.linspace(-5, 5, 200)[:, None].astype(np.float32)
    for t, ax in enumerate(axes):
        xs, ys = test.x_support[t], test.y_support[t]
        xq, yq = np.asarray(test.x_query[t]), np.asarray(test.y_query[t])
        order = np.argsort(xq[:, 0])
        ax.plot(xq[order, 0], yq[order, 0], "k--", lw=1, label="truth")
        for method, (learner, state, noise) in states.items():
            out = np.asarray(jax.jit(learner.predict)(jax.random.key(t), state, xs, ys, grid))
            mean, sd = out.mean(0)[:, 0], np.sqrt(out.var(0)[:, 0] + noise**2)
            color = _COLORS.get(method, "C7")
            ax.plot(grid[:, 0], mean, color=color, lw=1.3, label=method)
            if method == "NIW":
                ax.fill_between(grid[:, 0], mean - 2 * sd, mean + 2 * sd, color=color, alpha=0.15)
        ax.plot(np.asarray(xs)[:, 0], np.asarray(ys)[:, 0], "ko", ms=5, label="support")
        ax.set_xlabel("x")
    axes[0].legend(fontsize=7)
    ctx.savefig(fig, f"{name}-fits")


def _coverage_figure(ctx, name, results, levels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for method, scores in results.items():
        ax.plot(levels, scores["coverage"], "o-", ms=3, color=_COLORS.get(method, "C7"),
                label=method)  # fmt: skip
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("empirical coverage")
    ax.legend(fontsize=7)
    ctx.savefig(fig, f"{name}-calibration")


@experiment(
    "niw-sine",
    "Few-shot sinusoid and sine-or-line regression: NIW vs MAML, first-order MAML and Reptile "
    "(MSE, NLL, interval calibration, time per meta-iteration)",
)
def niw_sine(ctx: RunContext) -> dict[str, Any]:
    import jax
    import optax
    from bayes.models import niw as N

    net = N.mlp((1, 40, 40, 1), weight_scale=0.01)  # Finn et al.'s network and init
    lik = N.gaussian_likelihood(0.1)
    plan = SINE_PLANS[_plan_name(ctx)]
    samplers = {"sine": N.sample_sinusoid, "sine-or-line": N.sample_sine_or_line}
    settings = [(f"{kind}-{shots}shot", samplers[kind], shots) for kind, shots in plan["settings"]]
    iterations, chunk, num_test, batch = (plan[k] for k in ("iterations", "chunk", "test", "batch"))

    def learners():
        adam = optax.adam(1e-3)
        methods = [
            N.niw_meta_learner(net, lik, adam, **NIW_SINE),
            N.maml(net, lik, adam, num_inner_steps=1, inner_step_size=0.01, num_test_steps=10),
            N.reptile(net, lik, adam, num_inner_steps=10, inner_step_size=0.01),
        ]
        if not ctx.quick:
            methods.insert(2, N.maml(net, lik, adam, num_inner_steps=1, inner_step_size=0.01,
                                     num_test_steps=10, first_order=True))  # fmt: skip
        return methods

    out: dict[str, Any] = {"levels": list(N.LEVELS)}
    for s, (name, sampler, shots) in enumerate(settings):
        sample = lambda k, f=sampler, n=shots: f(  # noqa: E731
            rng_key=k, num_tasks=batch, num_support=n, num_query=10
        )
        k_test, k_cal = jax.random.split(jax.random.key(10_000 + ctx.seed + s))
        test = sampler(rng_key=k_test, num_tasks=num_test, num_support=shots, num_query=50)
        calib = sampler(rng_key=k_cal, num_tasks=100, num_support=shots, num_query=50)
        results, states = _train_and_score(
            ctx, learners(), sample, test, task="regression", iterations=iterations,
            chunk=chunk, seed=ctx.seed + 100 * s, calib=calib,
        )  # fmt: skip
        _sine_figures(ctx, name, states, test, N.LEVELS)
        _coverage_figure(ctx, name, results, N.LEVELS)
        for method, scores in results.items():
            ctx.log(
                f"{name} {method}: MSE {scores['mse']:.3f} +- {scores['mse_ci95']:.3f}, "
                f"NLL {scores['nll']:.3f}, calib {scores['calibration_error']:.3f}, "
                f"{1e3 * scores['seconds_per_iteration']:.2f} ms/iter"
            )
        out[name] = results
    return out


@experiment(
    "niw-digits",
    "5-way K-shot classification on rotated 8x8 digits (unseen digits 7-9 at test): NIW vs "
    "MAML vs ProtoNet (accuracy with 95% CI, NLL, expected calibration error)",
)
def niw_digits(ctx: RunContext) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optax
    from bayes.models import niw as N

    ways = 5
    train_classes = jnp.asarray(N.digits_classes("train"))
    test_classes = jnp.asarray(N.digits_classes("test"))
    plan = DIGITS_PLANS[_plan_name(ctx)]
    shots_list, iterations = plan["shots"], plan["iterations"]
    chunk, num_test = plan["chunk"], plan["test"]
    lik = N.categorical_likelihood()
    clf = N.mlp((64, 64, 64, ways))
    emb = N.mlp((64, 64, 64, 64))

    def learners():
        adam = optax.adam(1e-3)
        return [
            N.niw_meta_learner(clf, lik, adam, **NIW_DIGITS),
            N.maml(clf, lik, adam, num_inner_steps=5, inner_step_size=0.1, num_test_steps=10),
            N.protonet(emb, adam, num_ways=ways),
        ]

    out: dict[str, Any] = {
        "split": {"train_digits": list(N.DIGITS_TRAIN_DIGITS),
                  "test_digits": list(N.DIGITS_TEST_DIGITS), "rotations": [0, 90, 180, 270]},
    }  # fmt: skip
    for shots in shots_list:
        sample = lambda k, n=shots: N.sample_classification(  # noqa: E731
            train_classes, rng_key=k, num_tasks=8, num_ways=ways, num_shots=n, num_query=5
        )
        test = N.sample_classification(
            test_classes, rng_key=jax.random.key(20_000 + ctx.seed + shots), num_tasks=num_test,
            num_ways=ways, num_shots=shots, num_query=15,
        )  # fmt: skip
        results, _ = _train_and_score(
            ctx, learners(), sample, test, task="classification", iterations=iterations,
            chunk=chunk, seed=ctx.seed + shots,
        )  # fmt: skip
        for method, scores in results.items():
            ctx.log(
                f"{ways}-way {shots}-shot {method}: acc {scores['accuracy']:.3f} +- "
                f"{scores['accuracy_ci95']:.3f}, ECE {scores['ece']:.3f}, NLL {scores['nll']:.3f}"
            )
        out[f"{ways}way-{shots}shot"] = results

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    keys = [k for k in out if k != "split"]
    methods = list(out[keys[0]])
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        xs = [i + j * width for i in range(len(keys))]
        acc = [out[k][method]["accuracy"] for k in keys]
        ci = [out[k][method]["accuracy_ci95"] for k in keys]
        color = _COLORS.get(method, "C7")
        axes[0].bar(xs, acc, width, yerr=ci, color=color, label=method)
        axes[1].bar(xs, [out[k][method]["ece"] for k in keys], width, color=color)
    for ax, label in zip(axes, ("accuracy (95% CI)", "expected calibration error")):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(keys))], keys)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    ctx.savefig(fig, "digits")
    return out


if __name__ == "__main__":
    import argparse
    import json
    import time
    from pathlib import Path

    from bayes.experiments import to_jsonable

    parser = argparse.ArgumentParser(description="Run a niw-sine or niw-digits plan.")
    parser.add_argument("experiment", choices=("niw-sine", "niw-digits"))
    parser.add_argument("--plan", choices=sorted(SINE_PLANS), default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or f"results/{args.experiment}-{args.plan}")
    out.mkdir(parents=True, exist_ok=True)
    context = RunContext(quick=args.plan == "quick", seed=args.seed, out=out)
    context.plan = args.plan  # read by _plan_name
    started = time.perf_counter()
    fn = niw_sine if args.experiment == "niw-sine" else niw_digits
    record = {"plan": args.plan, "seed": args.seed, "results": fn(context)}
    record["wall_s"] = time.perf_counter() - started
    record["figures"] = context.figures
    (out / "results.json").write_text(json.dumps(to_jsonable(record), indent=1))
