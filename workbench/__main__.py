"""``python -m workbench …`` = the ``workbench`` command, for a Python that has the package on its path but not
installed (e.g. ``PYTHONPATH=. python3 -m workbench run …`` on a machine where nothing may be installed)."""

import sys

from workbench.cli import main

sys.exit(main())
