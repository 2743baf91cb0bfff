"""The chaos benchmark's parts; ``benchmarks/chaos.py`` is its command line and re-exports them.

- ``config``: the run's settings (lock duration, timeouts, the worker's environment) and
  the outcomes a watch can be scripted to reach;
- ``plan``: the scenarios: which watches, which ARM faults each operation's script holds;
- ``seam``: what the product tried, counted at its ``Outputs`` seam, beside what the
  broker received, dropped and kept;
- ``harness``: the instruments: the worker subprocess, the polls-queue sampler, the
  event collector, submitting and counting what is left;
- ``report``: ``ChaosReport``, its invariants (``violations``) and its table;
- ``run``: ``run_chaos``, the run itself with its fault-injecting monkey;
- ``window``: the duplicate-detection window run (``run_window``, ``WindowReport``).
"""
