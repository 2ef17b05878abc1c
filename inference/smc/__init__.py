"""SMC layer (pure JAX): resampling, the state-space model contract, particle
filters (bootstrap, guided, auxiliary), PaRIS smoothing, conditional SMC /
Parisian particle Gibbs and learning by stochastic approximation and Markov
score climbing."""

from bayes.inference.smc import backward, csmc, filters, learning, paris, resampling
from bayes.inference.smc.filters import FilterOutput, run_filter
from bayes.inference.smc.ssm import AuxiliaryLogweightFn, Proposal, StateSpaceModel

__all__ = [
    "AuxiliaryLogweightFn",
    "FilterOutput",
    "Proposal",
    "StateSpaceModel",
    "backward",
    "csmc",
    "filters",
    "learning",
    "paris",
    "resampling",
    "run_filter",
]
