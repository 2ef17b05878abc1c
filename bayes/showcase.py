"""The main job: a short end-to-end tour on embedded defaults.

``bayes showcase`` (what ``make demo`` runs) fits a model, prints the ArviZ
summary and writes plots to a results folder. It uses local files only.
Later layers add their step to :data:`STEPS`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["STEPS", "run_showcase"]


def _step_conjugate(out: Path, *, seed: int, progress: bool) -> None:
    """NUTS on the conjugate Normal model, checked against its exact posterior."""
    import arviz as az
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from numpyro.infer import MCMC, NUTS

    from bayes.models.conjugate import exact_posterior, model, simulate

    y = simulate(50, seed=seed)
    mcmc = MCMC(
        NUTS(model),
        num_warmup=500,
        num_samples=500,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=progress,
    )
    mcmc.run(jax.random.key(seed), y=y)
    idata = az.from_numpyro(mcmc)
    mean, sd = exact_posterior(y)
    print("\nConjugate Normal model, NUTS (2 chains x 500 draws):")
    print(az.summary(idata, var_names=["mu"]).to_string())
    print(f"exact posterior: mean {mean:.4f}, sd {sd:.4f}")
    az.plot_trace(idata, var_names=["mu"])
    plt.gcf().savefig(out / "conjugate_trace.png", dpi=100, bbox_inches="tight")
    plt.close("all")


#: Ordered steps of the showcase: (title, function(out, seed=, progress=)).
STEPS: list[tuple[str, Callable[..., None]]] = [
    ("Conjugate Normal model with NUTS", _step_conjugate),
]


def run_showcase(out: str | Path = "results", *, seed: int = 0, progress: bool = True) -> Path:
    """Run every showcase step, writing plots under ``out``.

    Args:
        out: Results folder (created if missing).
        seed: Master seed.
        progress: Show progress bars.

    Returns:
        The results folder.
    """
    from bayes.config import enable_compilation_cache

    enable_compilation_cache()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (title, step) in enumerate(STEPS, 1):
        print(f"\n[{i}/{len(STEPS)}] {title}", file=sys.stderr, flush=True)
        step(folder, seed=seed, progress=progress)
    plots = sorted(p.name for p in folder.glob("*.png"))
    print(f"\nPlots written to {folder}/: {', '.join(plots)}")
    return folder
