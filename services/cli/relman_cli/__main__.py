"""``python -m relman_cli`` is the ``relman`` command."""

import sys

from relman_cli.main import main

sys.exit(main())
