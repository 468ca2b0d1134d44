"""The standard benchmark suite: `python -m taxi_bench.suite` (see its `__main__`)."""
