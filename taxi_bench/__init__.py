"""taxi's load generator and benchmark suite (see `taxi_bench.cli` and docs/benchmarks.md)."""
