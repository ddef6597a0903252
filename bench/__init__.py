"""Benchmarks, not run by the test suite: `python -m bench` (or `make bench`) runs them all;
`python -m bench.training | inference | serving | memory` runs one. See bench/RESULTS.md."""
