"""Lastline benchmarks: `make bench` (python -m bench)."""
