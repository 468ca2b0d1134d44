import asyncio
import time

import pytest

from taxi_bench.latency import LatencyRecorder
from taxi_bench.ledger import Ledger
from taxi_bench.schedule import Timeline, staggered


def test_percentiles_are_nearest_rank():
    recorder = LatencyRecorder(x / 1000 for x in range(1, 101))  # 1 ms .. 100 ms
    summary = recorder.summary()
    assert summary["count"] == 100
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]) == (50.0, 95.0, 99.0)
    assert summary["max_ms"] == 100.0
    assert LatencyRecorder([0.007]).percentile(99) == 0.007
    assert LatencyRecorder().summary()["p99_ms"] is None


def test_latency_runs_from_the_scheduled_time():
    ledger = Ledger()
    ledger.expect("a", scheduled_at=100.0, series="position")
    ledger.arrive("a", at=100.25)
    assert list(ledger.latency["position"].samples) == [0.25]


def test_missing_duplicate_and_unexpected_messages_are_counted_apart():
    ledger = Ledger()
    for key in ("a", "b", "c"):
        ledger.expect(key, scheduled_at=0.0, series="position")
    ledger.arrive("a", at=1.0)
    ledger.arrive("a", at=2.0)
    ledger.arrive("z", at=2.0)
    tally = ledger.close()
    assert (tally.expected, tally.received, tally.lost) == (3, 1, 2)
    assert (tally.duplicates, tally.unexpected) == (1, 1)
    assert tally.lost_by_series == {"position": 2}
    assert len(ledger.latency["position"]) == 1  # the duplicate adds no sample


def test_a_fanout_records_the_latency_to_its_last_receiver_once_all_have_it():
    ledger = Ledger()
    ledger.expect_fanout(["d1", "d2", "d3"], scheduled_at=10.0, series="offer", last_series="last")
    ledger.arrive("d2", at=10.01)
    ledger.arrive("d1", at=10.03)
    assert "last" not in ledger.latency
    ledger.arrive("d3", at=10.02 + 0.5)
    assert list(ledger.latency["last"].samples) == [10.52 - 10.0]
    assert len(ledger.latency["offer"]) == 3


async def test_settling_ends_as_soon_as_everything_has_arrived():
    ledger = Ledger()
    ledger.expect("a", scheduled_at=0.0, series="x")
    asyncio.get_running_loop().call_soon(ledger.arrive, "a")
    # A grace of an hour: the test only finishes because the arrival ends the wait.
    await asyncio.wait_for(ledger.settle(grace=3600), timeout=5)
    assert ledger.close().lost == 0


async def test_settling_gives_up_after_the_grace_period():
    ledger = Ledger()
    ledger.expect("never", scheduled_at=0.0, series="x")
    await ledger.settle(grace=0.05)
    assert ledger.close().lost == 1


def test_a_timeline_is_bounded_by_its_end_and_its_count():
    assert Timeline(start=0.0, period=1.0, end=3.0).times() == [0.0, 1.0, 2.0]
    assert Timeline(start=0.0, period=1.0, end=100.0, count=2).times() == [0.0, 1.0]
    assert Timeline(start=0.0, period=1.0, end=3.0, offset=0.5).times() == [0.5, 1.5, 2.5]
    assert Timeline(start=0.0, period=1.0, end=0.5, offset=0.5).times() == []


def soon(count: int, period: float = 0.01) -> Timeline:
    """`count` times `period` apart, from now."""
    start = time.monotonic()
    return Timeline(start=start, period=period, end=start + count * period)


async def test_a_timeline_calls_each_time_once_it_has_come_then_is_done():
    timeline, calls = soon(5), []
    await asyncio.wait_for(timeline.each(lambda n, at: calls.append((n, at, time.monotonic()))), 5)
    assert [(n, at) for n, at, _ in calls] == list(enumerate(timeline.times()))
    assert all(called >= at for _, at, called in calls)


async def test_a_timeline_with_no_times_is_done_at_once():
    empty = Timeline(start=0.0, period=1.0, end=0.0)
    assert empty.each(lambda n, at: pytest.fail("called")).done()


async def test_a_call_that_raises_ends_a_timeline_with_its_error():
    calls = []

    def call(n: int, at: float) -> None:
        calls.append(n)
        if n == 1:
            raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await asyncio.wait_for(soon(5).each(call), 5)
    after = soon(6).each(lambda n, at: None)  # ends after the failed one's last time
    await asyncio.wait_for(after, 5)
    assert calls == [0, 1]


async def test_a_cancelled_timeline_calls_no_more():
    calls = []

    def call(n: int, at: float) -> None:
        calls.append(n)
        if n == 1:
            done.cancel()

    done = soon(5).each(call)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(done, 5)
    await asyncio.wait_for(soon(6).each(lambda n, at: None), 5)
    assert calls == [0, 1]


def test_senders_sharing_a_period_are_spread_evenly():
    assert [staggered(index, 4, 1.0) for index in range(4)] == [0.0, 0.25, 0.5, 0.75]
