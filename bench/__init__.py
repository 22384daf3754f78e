"""Benchmarks of the real `shopbot run` process against the local fakes (see README.md)."""
