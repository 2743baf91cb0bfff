"""The fuzz run's parts; ``benchmarks/fuzz.py`` is its command line and re-exports them.

- ``properties``: what must hold of ``parse_watch_request`` and ``classify_response``
  (and the shared fixed values: endpoint, subscription, "now");
- ``harness``: ``HandlerHarness`` (the whole handler with a fixed ARM answer and a
  recorder), ``Case`` and the per-class ``ClassTally``;
- ``documents``: building the JSON documents the classes vary;
- ``depth``, ``timestamps``, ``text``: the input classes (nesting; extreme and oddly
  spelled timestamps; whitespace and Unicode digits);
- ``amqp_class``: non-data AMQP bodies through the real SDK, emulator and worker;
- ``engines``: the time-bounded hypothesis and atheris engines;
- ``classes``: running the chosen classes and their report.
"""
