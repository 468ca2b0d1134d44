"""Where the suite works."""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
# Everything the suite writes except docs/benchmarks.md (ignored by git).
RESULTS = REPOSITORY / "bench-results"
