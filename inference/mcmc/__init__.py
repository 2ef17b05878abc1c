"""MCMC layer (pure JAX): chunked multi-chain HMC/NUTS/ChEES over BlackJAX kernels.

- :mod:`~bayes.inference.mcmc.window`: Stan's window adaptation as a per-step update.
- :mod:`~bayes.inference.mcmc.chains`: chain states, one transition, chunked runs.
- :mod:`~bayes.inference.mcmc.chees`: ChEES warmup preconditioned by window adaptation.
"""

from bayes.inference.mcmc.chains import (
    METHODS,
    ChainState,
    StepInfo,
    Tuning,
    build_step,
    chees_integration_steps,
    run_chunk,
)
from bayes.inference.mcmc.chees import (
    CheesWarmupInfo,
    CheesWarmupState,
    chees_adaptation,
    chees_run_chunk,
    chees_warmup,
)
from bayes.inference.mcmc.window import (
    WindowAdaptationState,
    prefer_dense,
    schedule,
    window_adaptation,
)

__all__ = [
    "METHODS",
    "ChainState",
    "CheesWarmupInfo",
    "CheesWarmupState",
    "StepInfo",
    "Tuning",
    "WindowAdaptationState",
    "build_step",
    "chees_adaptation",
    "chees_integration_steps",
    "chees_run_chunk",
    "chees_warmup",
    "prefer_dense",
    "run_chunk",
    "schedule",
    "window_adaptation",
]
