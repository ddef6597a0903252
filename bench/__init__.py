"""Benchmarks (not run by the test suite); `python -m bench.serving` measures the HTTP service."""
