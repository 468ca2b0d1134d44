"""The accounting, against a relay that misbehaves on purpose.

The generator's tracking engine (the `relay` workload) drives a small websockets
server started here, which loses, repeats or holds back chosen positions; the outcome
must say exactly that.
"""

import argparse
import asyncio
import json
import time
from collections import Counter

import pytest

from taxi_bench.processes import ProcessWatch
from taxi_bench.relay import location_message
from taxi_bench.runner import InProcess
from taxi_bench.target import target_from_url
from taxi_bench.workloads import relay
from taxi_bench.workloads.context import Context


class FaultyRelay:
    """Relays like `taxi_bench.relay`, except for the (pair, n-th message) it is told
    to drop or to send twice."""

    def __init__(self, drop=(), twice=()):
        self.drop, self.twice = set(drop), set(twice)
        self.riders = {}
        self.seen = Counter()

    async def handle(self, connection):
        role, _, pair = connection.request.path.strip("/").partition("/")
        if role == "rider":
            self.riders[pair] = connection
            await connection.wait_closed()
            return
        async for frame in connection:
            number = self.seen[pair]
            self.seen[pair] += 1
            if (int(pair), number) in self.drop:
                continue
            message = location_message(pair, json.loads(frame)["data"])
            for _ in range(2 if (int(pair), number) in self.twice else 1):
                await self.riders[pair].send(message)


@pytest.fixture
def start_relay(websockets_server):
    async def start(relay_behaviour: FaultyRelay) -> str:
        return await websockets_server(relay_behaviour.handle)

    return start


class StallAfterReady(InProcess):
    """Checkpoints that block the generator's loop just after the run starts, the way
    a busy generator falls behind its schedule."""

    def __init__(self, stall: float):
        super().__init__(ProcessWatch([]))
        self.stall = stall

    async def reach(self, name):
        await super().reach(name)
        if name == "ready":
            asyncio.get_running_loop().call_later(0.15, time.sleep, self.stall)


def arguments(**overrides) -> argparse.Namespace:
    values = dict(pairs=2, rate=10.0, duration=1.0, grace=1.0, setup_concurrency=4, relay_workers=1)
    return argparse.Namespace(**{**values, **overrides})


async def run_relay(url: str, checkpoints=None, **overrides):
    context = Context(
        target=target_from_url(url),
        roster=None,
        checkpoints=checkpoints or InProcess(ProcessWatch([])),
        deadline=time.monotonic() + 30,
    )
    return await relay.run(context, arguments(**overrides))


async def test_every_position_delivered_once_is_counted_once(start_relay):
    outcome = await run_relay(await start_relay(FaultyRelay()))
    tally = outcome.tally
    assert tally.expected == 2 * 10
    assert (tally.received, tally.lost, tally.duplicates, tally.unexpected) == (20, 0, 0, 0)
    assert len(outcome.latency["position"]) == 20


async def test_a_position_that_never_arrives_is_lost(start_relay):
    relay_server = FaultyRelay(drop={(0, 3), (1, 0), (1, 9)})
    outcome = await run_relay(await start_relay(relay_server), grace=0.3)
    assert (outcome.tally.received, outcome.tally.lost) == (17, 3)
    assert outcome.tally.lost_by_series == {"position": 3}
    assert outcome.tally.duplicates == 0


async def test_a_position_that_arrives_twice_is_a_duplicate(start_relay):
    relay_server = FaultyRelay(twice={(0, 5), (1, 2)})
    outcome = await run_relay(await start_relay(relay_server))
    assert (outcome.tally.received, outcome.tally.lost, outcome.tally.duplicates) == (20, 0, 2)
    assert len(outcome.latency["position"]) == 20


async def test_latency_runs_from_the_schedule_not_from_the_late_send(start_relay):
    # The generator stalls 0.4 s right after the start: positions scheduled in that
    # time go out late, and their latency must include the wait. Measured from the
    # actual send, every latency here would be about a millisecond.
    url = await start_relay(FaultyRelay())
    outcome = await run_relay(url, checkpoints=StallAfterReady(stall=0.4), rate=20.0)
    latency = outcome.latency["position"]
    assert outcome.tally.lost == 0
    assert max(latency.samples) >= 0.25
    assert latency.percentile(50) < 0.1  # the positions scheduled after the stall
