"""Programmable VI (ELBO, mean-field guide) vs NumPyro SVI (``Trace_ELBO``) in one run.

Two problems, the same model, guide family, optimiser (Adam), step size,
number of steps and minibatches on both sides:

- Bayesian logistic regression, ``N = 1000``, ``D = 25``: our
  :func:`~bayes.inference.vi.make_guide` mean-field guide vs NumPyro's ``AutoNormal``.
- The VAE of :mod:`bayes.models.vae` on the 8x8 digits (amortised Gaussian
  encoder, minibatches of 64 images) with both libraries given the same
  NumPyro model and guide.

Throughput is measured on blocks of ``block`` steps compiled into one loop
on each side (``lax.scan`` of our ``step``; ``lax.fori_loop`` of
``SVI.update``), compile time excluded (each compiled loop is run once before
timing). The two sides then run in back-to-back pairs many times: the
fastest block of each gives steps per second (blocks of a few milliseconds
often run without being preempted, so the minimum is close to the unloaded
speed even on a shared machine) and the median over pairs of the ratio of
their times gives the speed ratio. The objective reached after ``num_steps``
steps is evaluated for both fits with one common estimator (ELBO averaged
over many guide draws), for three optimisation runs (seeds of the
minibatches and draws) on each side: mean ± standard deviation between runs.

Usage::

    python benchmarks/vi.py              # writes the "vi" section of docs/benchmarks.md
    python benchmarks/vi.py --quick --no-write
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from bayes.inference import vi
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

N, D = 1000, 25
#: Optimisation runs (minibatch and draw streams) whose final ELBO is compared.
SEEDS = (0, 1, 2)


def logreg_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(np.float32)
    w = rng.standard_normal(D).astype(np.float32)
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-(x @ w)))).astype(np.float32)
    return x, y


def logreg_model(x, y):
    w = numpyro.sample("w", dist.Normal(jnp.zeros(x.shape[1]), 1.0).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)


def best_times(fn_a, fn_b, repeats: int) -> tuple[float, float, float]:
    """Time two compiled loops in back-to-back pairs (fair under a shared CPU).

    Returns:
        ``(best_a, best_b, ratio)``: the best wall time of each and the median
        over pairs of ``time_b / time_a``; the two runs of a pair see about the
        same load, and the order within a pair alternates.
    """
    jax.block_until_ready(fn_a())  # compile
    jax.block_until_ready(fn_b())
    times_a, times_b = [], []
    for i in range(repeats):
        pair = ((fn_a, times_a), (fn_b, times_b))
        for fn, times in pair if i % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - t0)
    ratio = float(np.median(np.asarray(times_b) / np.asarray(times_a)))
    return min(times_a), min(times_b), ratio


def ours(program, model, guide, args, lr, seed):
    """``go(n, run_seed)`` runs ``n`` compiled steps from the initial state (the
    run seed picks the minibatches and draws); ``params(n, run_seed)`` after them."""
    alg = vi.build(program, model, guide, optax.adam(lr), *args, rng_key=jax.random.key(seed))
    state0 = alg.init(rng_key=jax.random.key(seed + 1))
    run = jax.jit(vi.run_steps, static_argnums=(0, 3))

    def go(num_steps, run_seed=0):
        return run(alg.step, state0, jax.random.key(seed + 2 + run_seed), num_steps)[0].params

    return go, lambda num_steps, run_seed: alg.constrain(go(num_steps, run_seed))


def numpyro_svi(model, guide, batch_args, lr, seed):
    """``batch_args(rng_key) -> args`` picks the data of one step (identity for full batch)."""
    svi = SVI(model, guide, optax.adam(lr), Trace_ELBO())
    state0 = svi.init(jax.random.key(seed), *batch_args(jax.random.key(seed)))

    @partial(jax.jit, static_argnums=2)
    def loop(state, key, num_steps):
        def body(i, s):
            return svi.update(s, *batch_args(jax.random.fold_in(key, i)))[0]

        return jax.lax.fori_loop(0, num_steps, body, state)

    def go(num_steps, run_seed=0):
        # SVI draws from the key in its state; the loop's key picks the minibatches.
        state = state0._replace(rng_key=jax.random.key(seed + 100 + run_seed))
        return loop(state, jax.random.key(seed + 2 + run_seed), num_steps)

    return go, lambda num_steps, run_seed: svi.get_params(go(num_steps, run_seed))


def elbo_estimate(model, guide, params, args, num_draws, seed):
    program = jax.jit(
        lambda key: vi.log_importance_weights(
            model, guide, params, *args, rng_key=key, num_particles=num_draws
        )
    )
    log_w = np.asarray(program(jax.random.key(seed)), dtype=np.float64)
    return log_w.mean(), log_w.std() / np.sqrt(log_w.size)


def bench_logreg(num_steps: int, block: int, repeats: int):
    x, y = logreg_data()
    lr = 0.01
    our_guide = vi.make_guide(logreg_model, "meanfield")
    go_ours, params_ours = ours(vi.elbo, logreg_model, our_guide, (x, y), lr, 0)
    peer_guide = AutoNormal(logreg_model)
    go_peer, params_peer = numpyro_svi(logreg_model, peer_guide, lambda k: (x, y), lr, 0)
    t_ours, t_peer, ratio = best_times(lambda: go_ours(block), lambda: go_peer(block), repeats)
    e_ours, e_peer = (
        [elbo_estimate(logreg_model, g, params(num_steps, s), (x, y), 4000, 5)[0] for s in SEEDS]
        for g, params in ((our_guide, params_ours), (peer_guide, params_peer))
    )
    return t_ours / block, t_peer / block, ratio, e_ours, e_peer


def bench_vae(num_steps: int, block: int, repeats: int, batch: int = 64):
    from bayes.models.vae import load_digits, make_vae

    train, test = load_digits()
    x = jnp.asarray(train)
    model, guide = make_vae(4, 128)
    lr = 3e-3

    def pick(key):
        return x[jax.random.choice(key, x.shape[0], (batch,), replace=False)]

    def minibatch_elbo(model, guide, params, data, *, rng_key):
        k_batch, k_draw = jax.random.split(rng_key)
        return vi.elbo(model, guide, params, pick(k_batch), rng_key=k_draw) / batch

    go_ours, params_ours = ours(minibatch_elbo, model, guide, (x,), lr, 0)
    go_peer, params_peer = numpyro_svi(model, guide, lambda k: (pick(k),), lr, 0)
    t_ours, t_peer, ratio = best_times(lambda: go_ours(block), lambda: go_peer(block), repeats)
    n = test.shape[0]

    def per_image(params):
        return elbo_estimate(model, guide, params, (jnp.asarray(test),), 200, 5)[0] / n

    e_ours, e_peer = (
        [per_image(params(num_steps, s)) for s in SEEDS] for params in (params_ours, params_peer)
    )
    return t_ours / block, t_peer / block, ratio, e_ours, e_peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args()
    # (steps, block, repeats) per problem: a block takes a few milliseconds.
    if args.quick:
        logreg, vae = (500, 200, 20), (200, 10, 20)
    else:
        logreg, vae = (5000, 200, 400), (2000, 10, 300)

    rows = []
    for name, (steps, block, repeats), fn in (
        (f"logistic regression N={N} D={D}", logreg, bench_logreg),
        ("VAE, 8x8 digits, batch 64", vae, bench_vae),
    ):
        print(f"{name}: {steps} steps, {repeats} timed blocks of {block} ...", flush=True)
        t_ours, t_peer, ratio, e_ours, e_peer = fn(steps, block, repeats)
        rows.append([
            name, steps, 1 / t_ours, 1 / t_peer, ratio,
            f"{np.mean(e_ours):.2f} ± {np.std(e_ours, ddof=1):.2f}",
            f"{np.mean(e_peer):.2f} ± {np.std(e_peer, ddof=1):.2f}",
        ])  # fmt: skip
        print(rows[-1], flush=True)
    load = os.getloadavg()[0]

    from _report import markdown_table, write_section

    header = ["problem", "steps", "ours steps/s", "NumPyro steps/s", "speed ratio (ours/NumPyro)",
              "ours ELBO after steps", "NumPyro ELBO after steps"]  # fmt: skip
    table = markdown_table(header, rows, fmt=".3g")
    print(table)
    if not args.no_write:
        body = (
            "`python benchmarks/vi.py`: our ELBO program (`bayes.inference.vi`) vs NumPyro SVI "
            "(`Trace_ELBO`), same model, guide family, Adam step size, steps and minibatches. "
            "Steps per second exclude compilation: the fastest of many runs of a compiled "
            "block of steps (200 for logistic regression, 10 for the VAE; a few milliseconds "
            "each, so the minimum is close to the unloaded speed on a shared machine); the "
            "speed ratio is the median over back-to-back pairs (ours, NumPyro) of the ratio of "
            "their times, the order alternating, so both runs of a pair see about the same "
            "load. The ELBO after the same number of steps is estimated for both fits "
            "with the same estimator (mean over many guide draws; per image for the VAE, on "
            f"the test images) after {len(SEEDS)} optimisation runs (seeds of the minibatches "
            "and draws) on each side: mean ± standard deviation between runs. Logistic "
            "regression: our mean-field guide vs `AutoNormal`; VAE: the "
            "same amortised encoder guide on both sides. The best-of columns come from "
            "different moments, so on a loaded machine their ratio can differ from the paired "
            f"ratio by a few per cent (load average {load:.1f} on {os.cpu_count()} cores at "
            "the end of the timing).\n\n" + table
        )
        write_section("vi", "Programmable VI vs NumPyro SVI", body)


if __name__ == "__main__":
    main()
