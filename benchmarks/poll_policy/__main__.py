"""``python -m benchmarks.poll_policy``: see ``benchmarks.poll_policy.cli``."""

from benchmarks.poll_policy.cli import main

raise SystemExit(main())
