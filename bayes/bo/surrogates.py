"""Surrogate models: a small contract and a registry of them by name.

A surrogate turns the observations of a study into a BoTorch
:class:`~botorch.models.model.Model`. The loop only relies on this contract,
so any model whose posterior BoTorch's acquisition functions can use plugs in
(``Study.create(..., surrogate="name")``, ``bayes optimize --surrogate name``)::

    from bayes.bo import register_surrogate

    class MySurrogate:
        name = "mine"
        def fit(self, train_X, train_Y):
            ...
            return model  # a botorch Model

    register_surrogate("mine", MySurrogate)

Built in: ``gp`` (:class:`GPSurrogate`, BoTorch's ``SingleTaskGP``) and ``saas``
(:class:`SAASSurrogate`, the fully Bayesian SAAS GP sampled with NumPyro NUTS by BoTorch);
the JAX surrogates ``bnn-hmc``, ``bnn-vi``, ``ensemble``, ``ibnn``, ``dkl`` and
``stp`` of :mod:`bayes.bo.jax_surrogates` register on first lookup.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch stays out of module import
    from botorch.models.model import Model
    from torch import Tensor

__all__ = [
    "SURROGATE_MODULES",
    "GPSurrogate",
    "SAASSurrogate",
    "Surrogate",
    "SurrogateFitWarning",
    "available_surrogates",
    "make_surrogate",
    "register_surrogate",
]


class SurrogateFitWarning(UserWarning):
    """A surrogate fit failed (a fallback is used) or is doubtful (the message says why)."""


@runtime_checkable
class Surrogate(Protocol):
    """What the BO loop needs from a surrogate model.

    ``fit`` is called once per round with all complete observations, in the
    unit cube and in the maximization convention (the loop flips minimized
    objectives). It returns a BoTorch ``Model`` with ``m`` outputs whose
    ``posterior(X)`` accepts ``X`` of shape ``batch_shape x q x d`` (float64),
    returns a posterior with ``rsample`` of shape
    ``sample_shape x batch_shape x q x m``, and is differentiable with respect
    to ``X`` (gradient-based acquisition optimization needs it).

    Attributes:
        name: Registry name.
    """

    name: str

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        """Fit on ``train_X`` of shape ``n x d`` in ``[0, 1]^d`` and ``train_Y`` ``n x m``.

        Both are float64 tensors; ``n >= 2``. Outcomes are raw values (not
        standardized); the surrogate transforms them as it sees fit.
        """
        ...


_REGISTRY: dict[str, Callable[..., Surrogate]] = {}
#: Modules imported on the first lookup of an unknown name; each registers its
#: surrogates with :func:`register_surrogate` when imported (missing ones are skipped).
SURROGATE_MODULES: list[str] = ["bayes.bo.jax_surrogates"]


def _load_plugins() -> None:
    import importlib
    import importlib.util

    for module in SURROGATE_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(module)


def register_surrogate(name: str, factory: Callable[..., Surrogate]) -> None:
    """Make ``factory(**options)`` available as surrogate ``name``.

    Raises:
        ValueError: ``name`` is already registered with another factory.
    """
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"surrogate {name!r} is already registered")
    _REGISTRY[name] = factory


def available_surrogates() -> list[str]:
    """Registered surrogate names."""
    _load_plugins()
    return sorted(_REGISTRY)


def make_surrogate(name: str, **options: Any) -> Surrogate:
    """Instantiate surrogate ``name`` with ``options``.

    Raises:
        ValueError: Unknown name or options the surrogate does not take.
    """
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown surrogate {name!r} (known: {', '.join(available_surrogates())})")
    try:
        return _REGISTRY[name](**options)
    except TypeError as err:
        raise ValueError(f"bad options for surrogate {name!r}: {err}") from None


def _check_training_data(train_X: Tensor, train_Y: Tensor) -> None:
    if train_X.ndim != 2 or train_Y.ndim != 2 or train_X.shape[0] != train_Y.shape[0]:
        raise ValueError(
            f"expected train_X (n x d) and train_Y (n x m), got {tuple(train_X.shape)} "
            f"and {tuple(train_Y.shape)}"
        )


class GPSurrogate:
    """BoTorch ``SingleTaskGP`` with standardized outcomes, fitted by marginal likelihood.

    Inputs are already in the unit cube (the search space's encoding), which
    is the normalization BoTorch expects; outcomes get ``Standardize``. With
    ``m > 1`` outputs the GP is a batch of independent GPs. Fitting uses
    ``fit_gpytorch_mll`` (L-BFGS-B with its own restarts); if it still fails,
    a second attempt starts from the prior's default hyperparameters, and if
    that fails too a :class:`SurrogateFitWarning` names the error and the
    model keeps the default hyperparameters.
    """

    name = "gp"

    def __init__(self, max_attempts: int = 2):
        self.max_attempts = int(max_attempts)

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        _check_training_data(train_X, train_Y)
        error: Exception | None = None
        for _ in range(max(self.max_attempts, 1)):
            model = SingleTaskGP(train_X, train_Y, outcome_transform=Standardize(train_Y.shape[-1]))
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit_gpytorch_mll(mll)
                return model.eval()
            except Exception as err:  # BoTorch raises several types (ModelFittingError, ...)
                error = err
        warnings.warn(
            f"GP hyperparameter fitting failed ({type(error).__name__}: {error}); "
            "using the default hyperparameters for this round",
            SurrogateFitWarning,
            stacklevel=2,
        )
        return SingleTaskGP(
            train_X, train_Y, outcome_transform=Standardize(train_Y.shape[-1])
        ).eval()


class SAASSurrogate:
    """Fully Bayesian GP with the sparse axis-aligned subspace (SAAS) prior.

    BoTorch's ``SaasFullyBayesianSingleTaskGP`` sampled with NUTS
    (``fit_fully_bayesian_model_nuts``; in BoTorch 0.18 that is NumPyro's NUTS
    in JAX, in JAX's default float32): half-Cauchy shrinkage on inverse length
    scales suits higher-dimensional problems with few relevant inputs. The
    posterior is a mixture over ``num_samples / thinning`` hyperparameter draws.
    Only one outcome is supported (``m = 1``).

    Every fit builds new NumPyro closures, so JAX compiles its programs afresh
    (most of a fit's time at small ``n``), and the executables stay in JAX's
    caches: each fit left about 330 compiled programs (some 980 memory
    mappings) behind, and after some 65 fits a process hit Linux's limit on
    mappings and XLA failed with "LLVM ERROR: Unable to allocate section
    memory". ``fit`` therefore clears JAX's caches when it is done; other JAX
    programs of the process are compiled again (or loaded from the persistent
    compilation cache) on their next call.

    Args:
        num_warmup: NUTS warm-up steps.
        num_samples: NUTS draws kept before thinning.
        thinning: Keep every ``thinning``-th draw.
        max_tree_depth: NUTS maximum tree depth.
    """

    name = "saas"

    def __init__(
        self, num_warmup: int = 256, num_samples: int = 128, thinning: int = 16,
        max_tree_depth: int = 6,
    ):  # fmt: skip
        self.num_warmup = int(num_warmup)
        self.num_samples = int(num_samples)
        self.thinning = int(thinning)
        self.max_tree_depth = int(max_tree_depth)

    def fit(self, train_X: Tensor, train_Y: Tensor) -> Model:
        import torch
        from botorch.fit import fit_fully_bayesian_model_nuts
        from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP
        from botorch.models.transforms.outcome import Standardize

        _check_training_data(train_X, train_Y)
        if train_Y.shape[-1] != 1:
            raise ValueError(
                f"the saas surrogate models one outcome, got {train_Y.shape[-1]}; use gp"
            )
        model = SaasFullyBayesianSingleTaskGP(train_X, train_Y, outcome_transform=Standardize(1))
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        fit_fully_bayesian_model_nuts(
            model,
            max_tree_depth=self.max_tree_depth,
            warmup_steps=self.num_warmup,
            num_samples=self.num_samples,
            thinning=self.thinning,
            disable_progbar=True,
            seed=seed,
        )
        import jax

        jax.clear_caches()  # the fit's programs are never called again (see the class doc)
        return model.eval()


register_surrogate("gp", GPSurrogate)
register_surrogate("saas", SAASSurrogate)
