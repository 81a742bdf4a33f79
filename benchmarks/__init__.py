"""Benchmarks of the provider against what a user would otherwise write: ``make bench``."""
