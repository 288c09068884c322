"""The benchmark suite: `python -m bench` (or `make bench`). See docs/benchmarks.md.

Benchmarks are scripts that print figures; timings never appear in test assertions.
"""
