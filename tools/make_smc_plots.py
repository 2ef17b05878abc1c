"""Regenerate the PNGs of docs/smc.md and docs/zoo/paris.md (run from the repository root).

    python tools/make_smc_plots.py            # quick experiment runs (minutes on 2 cores)
    python tools/make_smc_plots.py --only smc # only the SMC-layer figure

The zoo figures are the plots of the registered experiments run with
``quick=True`` and seed 0; the SMC-layer figure compares bootstrap and
auxiliary particle filters against the Kalman filter. Every PNG is written
with a 256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
EXPERIMENTS = ("paris-bias", "paris-mle", "paris-msc", "smc-evidence")


def _save_small(fig_or_path, target: Path) -> None:
    """Save a figure (or re-save a PNG) as an adaptive-palette PNG."""
    from PIL import Image

    if isinstance(fig_or_path, Path):
        image = Image.open(fig_or_path).convert("RGB")
    else:
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig_or_path.savefig(buf, dpi=100, bbox_inches="tight")
        plt.close(fig_or_path)
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size / 1024:.0f} KB")


def smc_filters_figure(target: Path, reps: int = 400, num_particles: int = 32) -> None:
    """Log-likelihood errors and filtering means of three filters against Kalman."""
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from bayes.inference.smc import filters, run_filter
    from bayes.models import ssm

    theta = ssm.scalar_theta(0.9, 0.0, -1.0)
    mats = ssm.scalar_matrices(theta)
    _, ys = ssm.simulate(jax.random.key(0), mats, 100)
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    exact = ssm.kalman_filter(mats, ys)
    variants = {
        "bootstrap": {},
        "auxiliary (look-ahead at the mean)": {
            "auxiliary_logweight_fn": filters.lookahead_logweight(
                model, lambda xp, t, th: ssm.scalar_phi(th) * xp
            )
        },
        "fully adapted auxiliary": {
            "auxiliary_logweight_fn": ssm.predictive_logweight(ssm.scalar_matrices),
            "proposal": ssm.optimal_proposal(ssm.scalar_matrices),
        },
    }
    keys = jax.random.split(jax.random.key(1), reps)
    outs = {}
    for name, options in variants.items():
        run = jax.jit(
            jax.vmap(
                lambda k, o=options: run_filter(
                    model, theta, ys, rng_key=k, num_particles=num_particles, **o
                )
            )
        )
        outs[name] = run(keys)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    errors = [np.asarray(o.log_likelihood) - float(exact.log_likelihood) for o in outs.values()]
    axes[0].boxplot(errors, showfliers=False)
    axes[0].set_xticks([1, 2, 3], ["bootstrap", "look-ahead", "fully adapted"])
    axes[0].axhline(0.0, color="k", lw=0.8)
    axes[0].set(ylabel="log-lik. estimate - exact",
                title=f"T=100, N={num_particles}, {reps} runs")  # fmt: skip
    t = np.arange(ys.shape[0])
    kalman = np.asarray(exact.filtered_means[:, 0])
    for name, o in outs.items():
        rmse = np.sqrt(np.mean((np.asarray(o.filtering_mean[:, :, 0]) - kalman) ** 2, axis=0))
        axes[1].semilogy(t, rmse, lw=1, label=name)
    axes[1].semilogy(t, np.sqrt(np.asarray(exact.filtered_covs[:, 0, 0])), "k--", lw=0.8,
                     label="filtering sd (Kalman)")  # fmt: skip
    axes[1].set(xlabel="t", ylabel="RMSE of the filtering mean", title="error vs Kalman")
    axes[1].set_ylim(top=1.0)
    axes[1].legend(fontsize=7, ncol=2, loc="upper center")
    _save_small(fig, target)


def zoo_figures() -> None:
    from bayes.experiments import run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        for name in EXPERIMENTS:
            out = Path(tmp) / name
            result = run_experiment(name, quick=True, seed=0, out=out, progress=False)
            for png in out.glob("*.png"):
                stem = png.stem.replace("_", "-")
                _save_small(png, IMG / (f"{name}.png" if stem == name else f"{name}-{stem}.png"))
            print(name, {k: v for k, v in result.items() if not isinstance(v, dict)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("smc", "zoo"), default=None)
    args = parser.parse_args()
    IMG.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "smc"):
        smc_filters_figure(IMG / "smc-filters.png")
    if args.only in (None, "zoo"):
        zoo_figures()


if __name__ == "__main__":
    main()
