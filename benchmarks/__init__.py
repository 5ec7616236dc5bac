"""Benchmark suite for stepup-idp (issue 7): load driver, scenarios, server launchers, results.

Nothing here is imported by the product; ``make bench`` and ``make bench-compare`` run it.
See ``benchmarks/README.md``.
"""
