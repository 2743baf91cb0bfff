"""``python -m ops_status``: see ``ops_status.cli``."""

from __future__ import annotations

import sys

from ops_status.cli import main

if __name__ == "__main__":
    sys.exit(main())
