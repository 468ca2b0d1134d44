"""Accounting of the messages a run expects at their receivers, and what arrived.

Every expected message has a key — what identifies it at its receiver (a trip and its
new status, a driver and the client timestamp of a position) — and the time it was
scheduled to be sent. The first arrival of a key records its latency from that
schedule, not from when the generator managed to send it, so a generator or server
that falls behind shows up as latency instead of hiding it (open loop). Later arrivals
of the key are duplicates; keys that never arrive are lost; arrivals nobody expected
are counted apart.
"""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from taxi_bench.latency import LatencyRecorder


@dataclass
class Fanout:
    """One message that should reach several receivers (a request offered to ten
    drivers): when the last of them has it, the latency to that last one is recorded."""

    scheduled_at: float
    series: str
    waiting_for: int


@dataclass
class Expected:
    scheduled_at: float
    series: str
    fanout: Fanout | None = None


@dataclass
class Tally:
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    unexpected: int = 0
    lost_by_series: Counter = field(default_factory=Counter)

    def merge(self, other: "Tally") -> None:
        for name in ("expected", "received", "lost", "duplicates", "unexpected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lost_by_series.update(other.lost_by_series)


@dataclass
class Ledger:
    pending: dict[Hashable, Expected] = field(default_factory=dict)
    arrived: set[Hashable] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)
    latency: dict[str, LatencyRecorder] = field(default_factory=dict)
    first_arrival: float | None = None
    last_arrival: float | None = None

    def __post_init__(self):
        self._all_in = asyncio.Event()
        self._all_in.set()

    def expect(self, key: Hashable, scheduled_at: float, series: str) -> None:
        self._expect(key, Expected(scheduled_at, series))

    def expect_fanout(
        self, keys: Iterable[Hashable], scheduled_at: float, series: str, last_series: str
    ) -> None:
        keys = list(keys)
        fanout = Fanout(scheduled_at, last_series, waiting_for=len(keys))
        for key in keys:
            self._expect(key, Expected(scheduled_at, series, fanout))

    def _expect(self, key: Hashable, expected: Expected) -> None:
        if key in self.pending or key in self.arrived:
            raise ValueError(f"{key!r} is already expected: keys must be unique in a run")
        self.pending[key] = expected
        self.tally.expected += 1
        self._all_in.clear()

    def arrive(self, key: Hashable, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        expected = self.pending.pop(key, None)
        if expected is None:
            if key in self.arrived:
                self.tally.duplicates += 1
            else:
                self.tally.unexpected += 1
            return
        self.arrived.add(key)
        self.tally.received += 1
        if self.first_arrival is None:
            self.first_arrival = at
        self.last_arrival = at
        self._record(expected.series, at - expected.scheduled_at)
        if (fanout := expected.fanout) is not None:
            fanout.waiting_for -= 1
            if fanout.waiting_for == 0:
                self._record(fanout.series, at - fanout.scheduled_at)
        if not self.pending:
            self._all_in.set()

    def _record(self, series: str, seconds: float) -> None:
        recorder = self.latency.get(series)
        if recorder is None:
            recorder = self.latency[series] = LatencyRecorder()
        recorder.record(seconds)

    async def settle(self, grace: float) -> None:
        """Wait for the stragglers: until everything expected has arrived, at most
        `grace` seconds. What has not arrived by then is lost."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_in.wait(), timeout=grace)

    def close(self) -> Tally:
        """The final count: whatever is still pending is lost."""
        self.tally.lost = len(self.pending)
        self.tally.lost_by_series = Counter(expected.series for expected in self.pending.values())
        return self.tally
