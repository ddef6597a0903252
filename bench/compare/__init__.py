"""Side-by-side comparison with MultiVae (`python -m bench.compare`); see __main__.py."""
