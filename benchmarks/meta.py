"""Meta-learning cost per meta-iteration: NIW vs second- and first-order MAML.

One meta-iteration on a batch of 25 five-shot sinusoid tasks (5 support + 10
query points), at equal network sizes (MLP 1-40-40-1, 1,761 weights) and ~10x
larger (1-128-128-1, 16,897 weights), in one process:

- time: fastest wall time of the compiled step over repeated calls, the methods
  called in turn;
- memory: peak temporary buffer size of the compiled step from XLA's own
  ``jax.jit(step).lower(...).compile().memory_analysis()`` (what the step
  allocates beyond its inputs and outputs, i.e. the stored computational graph).

The paper's claim: NIW keeps no unrolled inner-loop graph, so its memory does
not grow with the number of inner steps while second-order MAML's does. The
second table sweeps the number of inner steps at the small size.

Usage::

    python benchmarks/meta.py             # writes the "meta" section of docs/benchmarks.md
    python benchmarks/meta.py --no-write
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import optax
from bayes.models import niw as N

BATCH, SHOTS, QUERY = 25, 5, 10


def _learners(hidden: int, steps: int):
    net = N.mlp((1, hidden, hidden, 1), weight_scale=0.01)
    lik = N.gaussian_likelihood(0.1)
    adam = optax.adam(1e-3)
    return net, [
        N.niw_meta_learner(net, lik, adam, num_inner_steps=steps, inner_step_size=0.01),
        N.maml(net, lik, adam, num_inner_steps=steps, inner_step_size=0.01),
        N.maml(net, lik, adam, num_inner_steps=steps, inner_step_size=0.01, first_order=True),
    ]


def _compile(learner, episode):
    """(compiled step, its arguments, peak temp MiB, compile seconds)."""
    state = learner.init(jax.random.key(0))
    key = jax.random.key(1)
    t0 = time.perf_counter()
    compiled = jax.jit(learner.step).lower(key, state, episode).compile()
    compile_s = time.perf_counter() - t0
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    jax.block_until_ready(compiled(key, state, episode))
    return compiled, (key, state, episode), float(temp), compile_s


def measure(learners, episode, repeats: int) -> dict[str, tuple[float, float, float]]:
    """Per learner name: (seconds per step, peak temp MiB, compile seconds).

    The learners' compiled steps are called in turn, ``repeats`` rounds, and each
    one's time is its fastest call: on a shared machine the minimum is the
    least disturbed estimate, and alternating spreads any load over all of them.
    """
    built = {lr.name: _compile(lr, episode) for lr in learners}
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(repeats):
        for name, (compiled, args, _, _) in built.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times[name].append(time.perf_counter() - t0)
    return {name: (min(times[name]), b[2], b[3]) for name, b in built.items()}


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    episode = N.sample_sinusoid(
        rng_key=jax.random.key(0), num_tasks=BATCH, num_support=SHOTS, num_query=QUERY
    )

    load_start = _load()
    size_rows = []
    for hidden in (40, 128):
        net, learners = _learners(hidden, 5)
        res = measure(learners, episode, args.repeats)
        niw_t, niw_m, _ = res["NIW"]
        for name, (t, m, c) in res.items():
            size_rows.append([f"1-{hidden}-{hidden}-1 ({net.num_params:,} weights)", name,
                              1e3 * t, m, t / niw_t, m / max(niw_m, 1e-9), c])  # fmt: skip
            print(size_rows[-1], flush=True)
    step_rows = []
    for steps in args.steps:
        _, learners = _learners(40, steps)
        res = measure(learners, episode, args.repeats)
        step_rows.append([steps] + [v for name in ("NIW", "MAML", "FOMAML")
                                    for v in (1e3 * res[name][0], res[name][1])])  # fmt: skip
        print(step_rows[-1], flush=True)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _report import markdown_table, write_section

    table1 = markdown_table(
        ["network", "method", "ms / meta-iteration", "peak temp MiB", "time / NIW",
         "memory / NIW", "compile s"], size_rows, fmt=".3g",
    )  # fmt: skip
    table2 = markdown_table(
        ["inner steps", "NIW ms", "NIW MiB", "MAML ms", "MAML MiB", "FOMAML ms", "FOMAML MiB"],
        step_rows, fmt=".3g",
    )  # fmt: skip
    body = (
        f"One meta-iteration on {BATCH} five-shot sinusoid tasks ({SHOTS} support + {QUERY} "
        "query points), 5 inner steps; time is the fastest of repeated calls of the compiled "
        "step, the methods called in turn, memory the peak temporary buffers reported by "
        "XLA's `memory_analysis()` for the compiled step. NIW runs its inner steps without "
        "a gradient graph (plus one Gauss-Newton diagonal per episode, from the layer "
        "activations and backpropagated output gradients); MAML differentiates through the "
        "unrolled inner loop; first-order MAML drops the second derivatives. Memory figures "
        "are deterministic; wall times on a machine shared with other jobs vary between "
        "calls, so read them as orders of magnitude.\n\n"
        f"{table1}\n\nMemory and time against the number of inner steps (1-40-40-1):\n\n"
        f"{table2}\n\nLoad average (1 min) of the shared machine: {load_start} at the start, "
        f"{_load()} at the end.\n\nReproduce: `python benchmarks/meta.py`."
    )
    print(table1 + "\n\n" + table2)
    if not args.no_write:
        write_section("meta", "Meta-learning: NIW vs MAML per meta-iteration", body)


if __name__ == "__main__":
    main()
