"""BoTorch models whose predictions are computed in JAX (through :mod:`bayes.bridge`).

- :class:`JaxEnsembleModel`: an ensemble of networks (posterior draws, VI
  draws or deep-ensemble members); the forward pass of all members is one
  JAX function, differentiated with respect to the inputs by its VJP.
- :class:`JaxGPModel`: independent exact GPs per output with a kernel of
  :mod:`bayes.models.bnn.gp`; the posterior is a multivariate normal, or for
  the Student-t process an equal-weight mixture over quantiles of the scale
  posterior (BoTorch's ``GaussianMixturePosterior``, the representation of
  fully Bayesian GPs, so every acquisition averages over it correctly).

Shapes vary from call to call during acquisition optimization (raw samples,
restarts, baseline plus candidates); rows and batches are padded to powers of
two so that only a handful of programs is ever compiled.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from botorch.models.ensemble import EnsembleModel
from botorch.models.model import Model
from botorch.posteriors.fully_bayesian import GaussianMixturePosterior
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
from torch import Tensor

from bayes.bridge import torch_function
from bayes.models.bnn import (
    KernelConfig,
    MLPConfig,
    PaddedData,
    apply,
    factorize,
    predict_joint,
)
from bayes.models.bnn.data import bucket_size

__all__ = ["JaxEnsembleModel", "JaxGPModel"]


@functools.cache
def _ensemble_fn(config: MLPConfig):
    def forward(x, w, mean, std):
        return jax.vmap(lambda wi: apply(config, wi, 2 * x - 1))(w) * std + mean

    return torch_function(forward)


class JaxEnsembleModel(EnsembleModel):
    """Ensemble of MLPs ``f_s(x) = std * net(w_s, 2x - 1) + mean``, ``s = 1..S``.

    Args:
        config: Network architecture (``in_dim = d``, ``out_dim = m``).
        weights: Flat weights of the members, ``S x num_params`` (float64).
        mean: Output mean of the standardization, ``m``.
        std: Output standard deviation of the standardization, ``m``.

    ``forward(X)`` maps ``batch_shape x q x d`` to ``batch_shape x S x q x m``;
    ``posterior(X)`` is BoTorch's ``EnsemblePosterior`` (draws pick members).
    """

    def __init__(self, config: MLPConfig, weights: Any, mean: Any, std: Any):
        super().__init__()
        self.config = config
        self._num_outputs = config.out_dim
        # Kept as float64 JAX arrays: the bridge passes them through without a copy per call.
        with jax.enable_x64(True):
            self._w = jnp.asarray(np.asarray(weights, dtype=np.float64))
            self._mean = jnp.asarray(np.asarray(mean, dtype=np.float64))
            self._std = jnp.asarray(np.asarray(std, dtype=np.float64))

    @property
    def ensemble_size(self) -> int:
        """Number of members ``S``."""
        return self._w.shape[0]

    def forward(self, X: Tensor) -> Tensor:
        batch, q, d = X.shape[:-2], X.shape[-2], X.shape[-1]
        flat = X.reshape(-1, d)
        n = flat.shape[0]
        size = bucket_size(n, 64, factor=8)
        if size > n:  # pad rows so that few shapes are ever compiled
            flat = torch.cat([flat, flat.new_zeros(size - n, d)])
        out = _ensemble_fn(self.config)(flat, self._w, self._mean, self._std)[:, :n]
        out = out.reshape(self.ensemble_size, *batch, q, self._num_outputs)
        return out.movedim(0, -3)


@functools.cache
def _gp_fn(config: KernelConfig, family: str, concentration: float, rate: float, m: int):
    """The bridged posterior function and the unravel of flat hyperparameters (``m`` outputs)."""
    import jax.flatten_util

    from bayes.models.bnn import init_hyperparameters

    with jax.enable_x64(True):
        example = init_hyperparameters(config, rng_key=jax.random.key(0))
        example = jax.tree.map(lambda a: jnp.broadcast_to(a, (m, *jnp.shape(a))), example)
        _, unravel = jax.flatten_util.ravel_pytree(example)

    def fn(xq, flat_params, x, y, mask, mean, std):
        params = unravel(flat_params)
        data = PaddedData(x, y, mask)

        def one_output(p, y_j, mean_j, std_j):
            factor = factorize(config, p, data, y_j)

            def one_batch(xb):
                pred = predict_joint(config, p, data, factor, 2 * xb - 1, family=family,
                                     concentration=concentration, rate=rate)  # fmt: skip
                extra = jnp.stack([pred.scale_shape, pred.scale_rate])
                extra = jnp.broadcast_to(extra, (xb.shape[0], 2))
                return jnp.concatenate(
                    [pred.mean[:, None] * std_j + mean_j, pred.cov * std_j**2, extra], axis=1
                )

            return jax.vmap(one_batch)(xq)

        # params and y carry a leading output axis; the result is (m, B, Q, Q + 3).
        return jax.vmap(one_output, in_axes=(0, 1, 0, 0))(params, y, mean, std)

    return torch_function(fn)


class JaxGPModel(Model):
    """Independent exact GPs per output with a JAX kernel; a BoTorch ``Model``.

    Args:
        config: Kernel configuration (:class:`~bayes.models.bnn.KernelConfig`).
        params: Fitted hyperparameters, a dict of arrays with leading axis ``m``.
        data: Padded training data; ``x`` already mapped to ``[-1, 1]^d``,
            ``y`` standardized (``n_pad x m``).
        mean: Output means of the standardization, ``m``.
        std: Output standard deviations, ``m``.
        family: ``"gaussian"`` or ``"student_t"``.
        concentration: Prior shape ``a`` of the scale (``student_t``).
        rate: Prior rate ``b`` of the scale (``student_t``).
        num_scales: Mixture components for the Student-t posterior: the scale
            takes the ``(k - 1/2) / K`` quantiles of its inverse-gamma posterior.

    ``posterior(X)`` for ``X`` of shape ``batch_shape x q x d`` returns a
    ``GPyTorchPosterior`` of the latent function with mean ``batch_shape x q x m``
    (``student_t``: a ``GaussianMixturePosterior`` with the mixture at dim -3).
    """

    def __init__(self, config: KernelConfig, params: dict[str, Any], data: PaddedData,
                 mean: Any, std: Any, *, family: str = "gaussian", concentration: float = 2.0,
                 rate: float = 2.0, num_scales: int = 16):  # fmt: skip
        super().__init__()
        self.config, self.family = config, family
        self.concentration, self.rate, self.num_scales = concentration, rate, int(num_scales)
        self._is_fully_bayesian = self._is_ensemble = family == "student_t"
        self._scale_cache: dict[int, Tensor] = {}
        # The layout of jax.flatten_util.ravel_pytree, in NumPy so nothing drops to float32.
        leaves = jax.tree.leaves(params)
        flat = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in leaves])
        self._num_outputs = int(np.shape(mean)[0])

        def as_t(a: Any) -> Tensor:
            return torch.tensor(np.array(a, dtype=np.float64))

        self._flat = as_t(flat)
        self._data = [as_t(a) for a in data]
        self._mean, self._std = as_t(mean), as_t(std)
        self._fn = _gp_fn(config, family, float(concentration), float(rate), self._num_outputs)

    @property
    def num_outputs(self) -> int:
        return self._num_outputs

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([self.num_scales]) if self._is_ensemble else torch.Size([])

    def posterior(self, X: Tensor, output_indices: list[int] | None = None,
                  observation_noise: Any = False, posterior_transform: Any = None,
                  **kwargs: Any) -> GPyTorchPosterior:  # fmt: skip
        batch, q, d = X.shape[:-2], X.shape[-2], X.shape[-1]
        flat = X.reshape(-1, q, d)
        b = flat.shape[0]
        # Coarse buckets: each (batch, q) shape is one compilation of the kernel recursion.
        size_b, size_q = bucket_size(b, 8, factor=8), bucket_size(q, 16, factor=4)
        if size_q > q:
            flat = torch.cat([flat, flat.new_full((b, size_q - q, d), 0.5)], dim=1)
        if size_b > b:
            flat = torch.cat([flat, flat.new_full((size_b - b, size_q, d), 0.5)], dim=0)
        out = self._fn(flat, self._flat, *self._data, self._mean, self._std)
        out = out[:, :b]
        mean = out[:, :, :q, 0]  # m x b x q
        cov = out[:, :, :q, 1 : q + 1]  # m x b x q x q
        if observation_noise is True or isinstance(observation_noise, Tensor):
            raise NotImplementedError("JaxGPModel gives the latent posterior only")
        outputs = range(self._num_outputs) if output_indices is None else output_indices
        mvns = []
        for j in outputs:
            mu_j = mean[j].reshape(*batch, q)
            cov_j = cov[j].reshape(*batch, q, q)
            if self._is_ensemble:
                scales = self._scales(j, out[j, 0, 0, size_q + 1], out[j, 0, 0, size_q + 2])
                shape = (1,) * len(batch)
                mu_j = mu_j.unsqueeze(-2).expand(*batch, self.num_scales, q)
                cov_j = cov_j.unsqueeze(-3) * scales.reshape(*shape, -1, 1, 1)
            mvns.append(MultivariateNormal(mu_j, cov_j))
        mvn = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns)
        posterior = (GaussianMixturePosterior if self._is_ensemble else GPyTorchPosterior)(mvn)
        if posterior_transform is not None:
            return posterior_transform(posterior)
        return posterior

    def _scales(self, j: int, a_n: Tensor, b_n: Tensor) -> Tensor:
        """Scale quantiles of output ``j``; ``a_n, b_n`` depend on the fit only, so cached."""
        if j not in self._scale_cache:
            self._scale_cache[j] = self._scale_quantiles(a_n, b_n)
        return self._scale_cache[j]

    def _scale_quantiles(self, a_n: Tensor, b_n: Tensor) -> Tensor:
        from scipy.stats import invgamma

        u = (np.arange(self.num_scales) + 0.5) / self.num_scales
        s = invgamma.ppf(u, float(a_n.detach()), scale=float(b_n.detach()))
        return torch.as_tensor(s, dtype=torch.float64)
