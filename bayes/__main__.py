"""``python -m bayes`` runs the command line."""

import sys

from bayes.cli import main

sys.exit(main())
