"""Benchmarks: run as modules (`python -m bench.<name>`); not collected by pytest."""
