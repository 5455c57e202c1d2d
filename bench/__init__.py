"""glint benchmark harness (BENCHMARKS.md protocol)."""
