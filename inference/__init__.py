"""Pure-JAX inference layer.

Sub-packages:
    mcmc: HMC/NUTS orchestration over BlackJAX kernels.
    smc: particle filters, PaRIS smoothing, particle Gibbs, tempered SMC.
    vi: programmable variational inference.

Nothing here imports PyTorch. Sub-packages load lazily so that
``import bayes.inference`` stays cheap.
"""

__all__ = ["mcmc", "smc", "vi"]
