"""Latency samples and their percentiles."""

import math
from array import array

REPORTED_PERCENTILES = (50, 95, 99)


def _nearest_rank(ordered: list[float], percent: float) -> float:
    """The smallest sample that at least `percent` % of the samples do not exceed."""
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


class LatencyRecorder:
    """Every sample of one kind of latency, in seconds.

    Samples are all kept (8 bytes each) rather than bucketed, so percentiles are exact
    and the shards of a run merge without loss.
    """

    def __init__(self, samples=()):
        self.samples = array("d", samples)

    def record(self, seconds: float) -> None:
        self.samples.append(seconds)

    def merge(self, other: "LatencyRecorder") -> None:
        self.samples.extend(other.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def percentile(self, percent: float) -> float | None:
        return _nearest_rank(sorted(self.samples), percent) if self.samples else None

    def summary(self) -> dict:
        """The count, and p50/p95/p99/max in milliseconds (None without samples)."""
        ordered = sorted(self.samples)
        summary: dict = {"count": len(ordered)}
        for percent in REPORTED_PERCENTILES:
            value = _nearest_rank(ordered, percent) if ordered else None
            summary[f"p{percent}_ms"] = None if value is None else round(value * 1000, 3)
        summary["max_ms"] = round(ordered[-1] * 1000, 3) if ordered else None
        return summary
