"""Sub-commands of the ``bayes`` CLI, one module each (see :mod:`bayes.cli`)."""
