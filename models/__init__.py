"""The model zoo: one sub-package per published method.

Each entry that reproduces a paper registers its experiments in an
``experiments`` module (see :mod:`bayes.experiments`), which must import
nothing heavy at module level so that ``bayes run --list`` stays fast.
"""

__all__: list[str] = []
