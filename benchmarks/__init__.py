"""Benchmarks: runnable measurements of ops-status (see docs/performance.md)."""
