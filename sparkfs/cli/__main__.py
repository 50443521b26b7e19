"""``python -m sparkfs.cli``: the ``sparkfs`` command."""

import sys

from . import main

sys.exit(main())
