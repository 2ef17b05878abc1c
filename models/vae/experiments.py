"""Experiments of the VAE entry (registered in bayes.experiments)."""

from __future__ import annotations

from typing import Any

from bayes.experiments import RunContext, experiment


@experiment(
    "vi-vae",
    "VAE on 8x8 digits trained with the ELBO and the IWELBO (K=5): test bounds, reconstructions",
)
def vi_vae(ctx: RunContext) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from bayes.inference import vi
    from bayes.models.vae import evaluate, load_digits, make_vae, mlp, per_image

    from bayes.vi_sampling import fit

    latent_dim, hidden, batch, k_train = 4, 128, 64, 5
    num_steps, k_eval = (1000, 100) if ctx.quick else (4000, 1000)
    train, test = load_digits(seed=ctx.seed)
    model, guide = make_vae(latent_dim, hidden)
    key = jax.random.key(ctx.seed)
    results: dict[str, Any] = {
        "settings": {"latent_dim": latent_dim, "hidden": hidden, "batch_size": batch,
                     "num_steps": num_steps, "train_particles": k_train,
                     "eval_particles": k_eval, "n_train": len(train), "n_test": len(test)},
    }  # fmt: skip
    fitted = {}
    for name, objective in (("elbo", vi.elbo), ("iwelbo", vi.iwelbo(k_train))):
        ctx.log(f"training the VAE with the {name} ({num_steps} steps)")
        result = fit(
            model, {"x": train}, guide=guide, objective=per_image(objective, batch),
            num_steps=num_steps, learning_rate=3e-3, convergence=False, chunk_size=500,
            seed=ctx.seed, progress=ctx.progress,
        )  # fmt: skip
        fitted[name] = result
        scores = evaluate(model, guide, result.params, test, rng_key=key, num_particles=k_eval)
        curve = result.objective.reshape(-1, 100).mean(axis=1)
        results[name] = {
            **scores,
            "train_objective_start": float(curve[0]),
            "train_objective_end": float(curve[-1]),
            "fit_s": result.seconds,
        }
    start, _ = vi.init_params(guide, model, train, rng_key=jax.random.key(ctx.seed))
    results["initial"] = evaluate(model, guide, start, test, rng_key=key, num_particles=k_eval)
    results["iwelbo_minus_elbo_trained_test_bound"] = (
        results["iwelbo"]["iwelbo"] - results["elbo"]["iwelbo"]
    )

    shown = test[:10]
    fig, axes = plt.subplots(5, 10, figsize=(10, 5.6))
    rows = [("data", shown)]
    for name, result in fitted.items():
        enc, dec = result.params["encoder"], result.params["decoder"]
        loc = mlp(enc, jnp.asarray(shown))[:, :latent_dim]
        rows.append((f"{name} recon.", jax.nn.sigmoid(mlp(dec, loc))))
    for name, result in fitted.items():
        z = jax.random.normal(jax.random.fold_in(key, 7), (10, latent_dim))
        rows.append((f"{name} sample", jax.nn.sigmoid(mlp(result.params["decoder"], z))))
    for r, (label, images) in enumerate(rows):
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(np.asarray(images[c]).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("VAE on 8x8 digits: test images, reconstructions and prior samples")
    ctx.savefig(fig, "vae_digits")
    return results
