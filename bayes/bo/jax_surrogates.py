"""BNN and infinite-width surrogates written in JAX (Li, Rudner & Wilson, ICLR 2024).

Registered names (``Study.create(..., surrogate=NAME, surrogate_options={...})``
or ``bayes optimize --surrogate NAME --surrogate-option KEY=VALUE``):

=============  ==============================================================
``bnn-hmc``    MLP (default 2x50 tanh) with a fan-in scaled Gaussian prior and a
               learned noise, sampled with NUTS by :func:`bayes.sample`; each
               round starts from the previous round's draws when the data
               extend the previous data (a warm start with a shorter warmup).
``bnn-vi``     The same network, mean-field Gaussian VI (tempered ELBO).
``ensemble``   Deep ensemble of MAP networks on bootstrap reweightings (optax).
``ibnn``       GP with the NNGP kernel of an infinitely wide ReLU or erf MLP;
               weight/bias variances learned, depth chosen by marginal likelihood.
``dkl``        Deep kernel learning: Matérn-5/2 on the features of an MLP,
               trained jointly by marginal likelihood.
``stp``        Student-t process: the NNGP kernel with an inverse-gamma scale
               (scale mixture of NNGPs), heavier-tailed predictive.
=============  ==============================================================

All inputs arrive in the unit cube and are mapped to ``[-1, 1]^d``; outputs
are standardized per column. The three network surrogates also take the
fields of :class:`bayes.models.bnn.BNNPrior` as options; ``bnn-hmc`` defaults
to ``weight_scale=2``, a prior over rougher functions than ``BNNPrior``'s 1,
under which its posterior explained the first tens of observations as noise.
The JAX code lives in :mod:`bayes.models.bnn`; the BoTorch wrappers in
:mod:`bayes.bo.jax_models`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bayes.bo.surrogates import _check_training_data, register_surrogate

if TYPE_CHECKING:
    from botorch.models.model import Model
    from torch import Tensor

__all__ = [
    "BNNHMCSurrogate",
    "BNNVISurrogate",
    "DKLSurrogate",
    "EnsembleSurrogate",
    "IBNNSurrogate",
    "STPSurrogate",
]


def _prepare(train_X: Tensor, train_Y: Tensor):
    from bayes.models.bnn import pad_data, standardize

    _check_training_data(train_X, train_Y)
    x = train_X.detach().cpu().numpy().astype(np.float64)
    z, mean, std = standardize(train_Y.detach().cpu().numpy())
    return x, pad_data(2 * x - 1, z), mean, std


def _prior_options(name: str, options: dict[str, Any]) -> dict[str, float]:
    from bayes.models.bnn import BNNPrior

    unknown = sorted(set(options) - set(BNNPrior._fields))
    if unknown:
        raise TypeError(
            f"{name}: unknown option(s) {', '.join(unknown)}; prior options are "
            f"{', '.join(BNNPrior._fields)}"
        )
    out = {}
    for key, value in options.items():
        value = float(value)
        if not np.isfinite(value) or (key != "log_noise_loc" and value <= 0):
            raise ValueError(f"{name}: {key} must be a positive finite number, got {value}")
        out[key] = value
    return out


# Above this posterior noise s.d. (standardized outputs) the fitted functions
# explain less than 75% of the output variance.
_NOISE_WARN = 0.5


def _warn_if_noise_dominates(noise_sd: np.ndarray, n: int, weight_scale: float) -> None:
    """Warn when the NUTS posterior explains the data mostly as noise.

    With few observations a smooth network prior can make "everything is
    noise" the more probable explanation (the weights are then free to roam
    the prior's volume); the surrogate then barely follows the data and the
    acquisition searches almost at random.
    """
    import warnings

    from bayes.bo.surrogates import SurrogateFitWarning

    noise = float(np.max(noise_sd))
    if noise > _NOISE_WARN:
        warnings.warn(
            f"bnn-hmc: the posterior attributes most of the output variance to noise "
            f"(median noise s.d. {noise:.2f} of the standardized outputs, {n} observations), "
            f"so the surrogate barely follows the data. If the objective is not that noisy, "
            f"the network prior is too smooth for it: raise weight_scale (now {weight_scale:g}, "
            f"e.g. surrogate option weight_scale={2 * weight_scale:g}) or tighten the noise "
            f"prior (log_noise_scale).",
            SurrogateFitWarning,
            stacklevel=3,
        )


def _seed() -> int:
    import torch

    # The study seeds torch before fitting, so this is reproducible within a study.
    return int(torch.randint(0, 2**31 - 1, ()).item())


class _NetworkSurrogate:
    """Common options of the network surrogates.

    ``prior_options`` are fields of :class:`bayes.models.bnn.BNNPrior`
    (``weight_scale``, ``input_scale``, ``bias_scale``, ``log_noise_loc``,
    ``log_noise_scale``); the others keep :attr:`prior_defaults`, then
    ``BNNPrior``'s defaults.
    """

    #: Prior fields whose surrogate default differs from ``BNNPrior``'s.
    prior_defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, width: int = 50, depth: int = 2, activation: str = "tanh",
                 **prior_options: float):  # fmt: skip
        self.width, self.depth, self.activation = int(width), int(depth), str(activation)
        self.prior_options = {**self.prior_defaults, **_prior_options(self.name, prior_options)}

    def _prior(self):
        from bayes.models.bnn import BNNPrior

        return BNNPrior(**self.prior_options)

    def _config(self, d: int, m: int):
        from bayes.models.bnn import MLPConfig

        return MLPConfig(d, m, self.width, self.depth, self.activation).check()

    def _model(self, config, draws, mean, std) -> Model:
        from bayes.bo.jax_models import JaxEnsembleModel

        return JaxEnsembleModel(config, np.asarray(draws.w), mean, std)


class BNNHMCSurrogate(_NetworkSurrogate):
    """Bayesian MLP sampled with NUTS; the posterior is an ensemble of weight draws.

    Args:
        width: Hidden units per layer.
        depth: Hidden layers.
        activation: Activation of the hidden layers (``"tanh"`` by default).
        num_chains: NUTS chains (vectorized).
        num_warmup: Warmup steps of a cold start.
        warm_num_warmup: Warmup steps when starting from the previous round's draws.
        num_samples: Draws per chain before thinning.
        thinning: Keep every ``thinning``-th draw (``S = num_chains * num_samples / thinning``).
        max_tree_depth: NUTS maximum tree depth.
        map_steps: Adam steps of the MAP initialization of a cold start.
        **prior_options: :class:`~bayes.models.bnn.BNNPrior` fields; ``weight_scale``
            defaults to 2 here (under ``BNNPrior``'s 1 the posterior explained the
            first tens of observations as noise on the ``bo-bnn`` problems). A
            :class:`~bayes.bo.surrogates.SurrogateFitWarning` is raised when the
            posterior's median noise s.d. exceeds 0.5 of the standardized outputs:
            with few observations and a prior too smooth for the objective, "all
            noise" can be the more probable explanation (a larger ``weight_scale``
            helps there).

    Attributes:
        noise_sd: After :meth:`fit`, the posterior median of the noise s.d. per
            output, in units of the standardized outputs, shape ``(m,)``.
    """

    name = "bnn-hmc"
    prior_defaults: ClassVar[dict[str, float]] = {"weight_scale": 2.0}
    # Last fit per (network, chains, prior) in this process: the warm start of the next round.
    _previous: ClassVar[dict[Any, tuple[np.ndarray, Any]]] = {}

    def __init__(self, width: int = 50, depth: int = 2, activation: str = "tanh",
                 num_chains: int = 4, num_warmup: int = 500, warm_num_warmup: int = 200,
                 num_samples: int = 100, thinning: int = 4, max_tree_depth: int = 8,
                 map_steps: int = 1000, **prior_options: float):  # fmt: skip
        super().__init__(width, depth, activation, **prior_options)
        self.num_chains, self.num_warmup = int(num_chains), int(num_warmup)
        self.warm_num_warmup, self.num_samples = int(warm_num_warmup), int(num_samples)
        self.thinning, self.max_tree_depth = int(thinning), int(max_tree_depth)
        self.map_steps = int(map_steps)
        self.noise_sd: np.ndarray | None = None
        if min(self.num_chains, self.num_samples, self.thinning) < 1:
            raise ValueError("num_chains, num_samples and thinning must be >= 1")

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        import jax

        from bayes.models.bnn import last_draws, sample_nuts

        x, data, mean, std = _prepare(train_X, train_Y)
        config = self._config(x.shape[1], data.y.shape[1])
        prior = self._prior()
        key = (config, self.num_chains, prior)
        init, num_warmup = None, self.num_warmup
        prev = self._previous.get(key)
        if (
            prev is not None
            and prev[0].shape[0] <= x.shape[0]
            and np.array_equal(prev[0], x[: prev[0].shape[0]])
        ):  # the same study one round later: continue from its chains
            init, num_warmup = prev[1], self.warm_num_warmup
        with jax.enable_x64(True):
            draws = sample_nuts(
                config, data, seed=_seed(), num_chains=self.num_chains, num_warmup=num_warmup,
                num_samples=self.num_samples, thinning=self.thinning,
                max_tree_depth=self.max_tree_depth, init=init, map_steps=self.map_steps,
                prior=prior,
            )  # fmt: skip
            self._previous[key] = (x, last_draws(draws, self.num_chains))
        self.noise_sd = np.median(np.exp(np.asarray(draws.log_noise)), axis=0)
        _warn_if_noise_dominates(self.noise_sd, len(x), prior.weight_scale)
        return self._model(config, draws, mean, std)


class BNNVISurrogate(_NetworkSurrogate):
    """Bayesian MLP with a mean-field Gaussian posterior (tempered ELBO, MAP start).

    Args:
        width: Hidden units per layer.
        depth: Hidden layers.
        activation: Activation of the hidden layers.
        num_draws: Ensemble members drawn from the fitted guide.
        num_steps: Adam steps.
        kl_weight: ``beta`` of ``E_q[log lik] - beta KL``; 1 is the plain ELBO.
        learning_rate: Adam learning rate.
        **prior_options: :class:`~bayes.models.bnn.BNNPrior` fields.
    """

    name = "bnn-vi"

    def __init__(self, width: int = 50, depth: int = 2, activation: str = "tanh",
                 num_draws: int = 64, num_steps: int = 2000, kl_weight: float = 0.1,
                 learning_rate: float = 0.01, **prior_options: float):  # fmt: skip
        super().__init__(width, depth, activation, **prior_options)
        self.num_draws, self.num_steps = int(num_draws), int(num_steps)
        self.kl_weight, self.learning_rate = float(kl_weight), float(learning_rate)
        if not 0 < self.kl_weight <= 1:
            raise ValueError(f"kl_weight must be in (0, 1], got {kl_weight}")

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        import jax

        from bayes.models.bnn import fit_meanfield

        x, data, mean, std = _prepare(train_X, train_Y)
        config = self._config(x.shape[1], data.y.shape[1])
        with jax.enable_x64(True):
            draws, _ = fit_meanfield(
                config, data, rng_key=jax.random.key(_seed()), num_draws=self.num_draws,
                num_steps=self.num_steps, kl_weight=self.kl_weight,
                learning_rate=self.learning_rate, prior=self._prior(),
            )  # fmt: skip
        if not np.isfinite(np.asarray(draws.w)).all():
            raise RuntimeError(
                "bnn-vi: the fitted guide has non-finite weights; lower learning_rate "
                f"(now {self.learning_rate}) or num_steps"
            )
        return self._model(config, draws, mean, std)


class EnsembleSurrogate(_NetworkSurrogate):
    """Deep ensemble: ``num_members`` MAP networks on bootstrap reweightings.

    Args:
        width: Hidden units per layer.
        depth: Hidden layers.
        activation: Activation of the hidden layers.
        num_members: Ensemble size.
        num_steps: Adam steps per member.
        learning_rate: Adam learning rate.
        **prior_options: :class:`~bayes.models.bnn.BNNPrior` fields (the MAP objective's prior).
    """

    name = "ensemble"

    def __init__(self, width: int = 50, depth: int = 2, activation: str = "tanh",
                 num_members: int = 8, num_steps: int = 1000,
                 learning_rate: float = 0.01, **prior_options: float):  # fmt: skip
        super().__init__(width, depth, activation, **prior_options)
        self.num_members, self.num_steps = int(num_members), int(num_steps)
        self.learning_rate = float(learning_rate)

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        import jax

        from bayes.models.bnn import train_ensemble

        x, data, mean, std = _prepare(train_X, train_Y)
        config = self._config(x.shape[1], data.y.shape[1])
        with jax.enable_x64(True):
            draws = train_ensemble(
                config, data, rng_key=jax.random.key(_seed()), num_members=self.num_members,
                num_steps=self.num_steps, learning_rate=self.learning_rate,
                prior=self._prior(),
            )  # fmt: skip
        return self._model(config, draws, mean, std)


class _KernelSurrogate:
    family = "gaussian"

    def __init__(self, num_steps: int = 300, learning_rate: float = 0.05,
                 concentration: float = 2.0, rate: float = 2.0):  # fmt: skip
        self.num_steps, self.learning_rate = int(num_steps), float(learning_rate)
        self.concentration, self.rate = float(concentration), float(rate)

    def _configs(self, d: int) -> list:
        raise NotImplementedError

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        import jax

        from bayes.bo.jax_models import JaxGPModel
        from bayes.models.bnn import fit_gp

        x, data, mean, std = _prepare(train_X, train_Y)
        best = None
        with jax.enable_x64(True):
            key = jax.random.key(_seed())
            for config in self._configs(x.shape[1]):
                params, lml = fit_gp(
                    config, data, rng_key=key, family=self.family, num_steps=self.num_steps,
                    learning_rate=self.learning_rate, concentration=self.concentration,
                    rate=self.rate,
                )  # fmt: skip
                total = float(np.sum(np.asarray(lml)))
                if np.isfinite(total) and (best is None or total > best[0]):
                    best = (total, config, params)
        if best is None:
            raise RuntimeError(f"{self.name}: the marginal likelihood is not finite for any fit")
        self.selected = best[1]
        return JaxGPModel(best[1], best[2], data, mean, std, family=self.family,
                          concentration=self.concentration, rate=self.rate)  # fmt: skip


class IBNNSurrogate(_KernelSurrogate):
    """Infinite-width BNN: GP with the NNGP kernel; depth picked by marginal likelihood.

    Args:
        depths: Candidate numbers of hidden layers (each fitted; best kept).
        activation: ``"relu"`` (arc-cosine) or ``"erf"`` (arcsin).
        num_steps: Adam steps on the log marginal likelihood.
        learning_rate: Adam learning rate.
    """

    name = "ibnn"

    def __init__(self, depths: Any = (1, 2, 3), activation: str = "relu",
                 num_steps: int = 300, learning_rate: float = 0.05):  # fmt: skip
        super().__init__(num_steps, learning_rate)
        self.depths = tuple(int(v) for v in np.atleast_1d(depths))
        if activation not in ("relu", "erf"):
            raise ValueError(f"activation must be 'relu' or 'erf', got {activation!r}")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths must be positive integers, got {depths!r}")
        self.activation = activation

    def _configs(self, d: int) -> list:
        from bayes.models.bnn import KernelConfig

        return [KernelConfig("ibnn", depth, self.activation) for depth in self.depths]


class STPSurrogate(IBNNSurrogate):
    """Student-t process: NNGP kernel with an inverse-gamma scale ``IG(concentration, rate)``.

    Args:
        depths: As :class:`IBNNSurrogate`.
        activation: As :class:`IBNNSurrogate`.
        num_steps: As :class:`IBNNSurrogate`.
        learning_rate: As :class:`IBNNSurrogate`.
        concentration: Shape of the inverse-gamma prior of the kernel scale.
        rate: Rate of the inverse-gamma prior of the kernel scale.
    """

    name = "stp"
    family = "student_t"

    def __init__(self, depths: Any = (1, 2, 3), activation: str = "relu",
                 num_steps: int = 300, learning_rate: float = 0.05,
                 concentration: float = 2.0, rate: float = 2.0):  # fmt: skip
        super().__init__(depths, activation, num_steps, learning_rate)
        if concentration <= 0 or rate <= 0:
            raise ValueError("concentration and rate must be > 0")
        self.concentration, self.rate = float(concentration), float(rate)


class DKLSurrogate(_KernelSurrogate):
    """Deep kernel learning: Matérn-5/2 with ARD on MLP features, trained jointly.

    Args:
        width: Hidden units per layer of the feature network.
        depth: Hidden layers of the feature network.
        activation: Activation of the feature network.
        feature_dim: Feature dimension (default ``min(d, 4)``).
        num_steps: Adam steps on the log marginal likelihood.
        learning_rate: Adam learning rate.
    """

    name = "dkl"

    def __init__(self, width: int = 50, depth: int = 2, activation: str = "tanh",
                 feature_dim: int | None = None, num_steps: int = 500,
                 learning_rate: float = 0.01):  # fmt: skip
        super().__init__(num_steps, learning_rate)
        self.width, self.depth, self.activation = int(width), int(depth), str(activation)
        self.feature_dim = None if feature_dim is None else int(feature_dim)

    def _configs(self, d: int) -> list:
        from bayes.models.bnn import KernelConfig, MLPConfig

        k = self.feature_dim or min(d, 4)
        net = MLPConfig(d, k, self.width, self.depth, self.activation).check()
        return [KernelConfig("dkl", feature_net=net)]


for _cls in (BNNHMCSurrogate, BNNVISurrogate, EnsembleSurrogate, IBNNSurrogate, DKLSurrogate,
             STPSurrogate):  # fmt: skip
    register_surrogate(_cls.name, _cls)
