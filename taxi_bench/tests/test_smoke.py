"""A short run of every workload against a real taxi server started for the tests."""

import argparse
import asyncio
import time

import pytest

from taxi_bench.processes import ProcessWatch
from taxi_bench.runner import InProcess
from taxi_bench.target import target_from_url
from taxi_bench.users import Roster, provision_over_rest
from taxi_bench.workloads import WORKLOADS
from taxi_bench.workloads.context import Context
from taxi_bench.workloads.trip_updates import Rounds

pytestmark = [pytest.mark.postgres]


def server_tracks_positions() -> bool:
    """Whether the native protocol has `driver.location` yet (issue #4)."""
    from realtime.protocols import NativeProtocol, ProtocolError

    try:
        NativeProtocol().parse(
            '{"type": "driver.location", "data": {"lat": 52.37, "lng": 4.89}}', user_id=1
        )
    except ProtocolError as error:
        return error.code != "unknown_type"
    return True


needs_positions = pytest.mark.skipif(
    not server_tracks_positions(), reason="driver.location is not in the native protocol yet"
)


def arguments(workload: str, **values) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    WORKLOADS[workload].add_arguments(parser)
    args = parser.parse_args([])
    for name, value in values.items():
        setattr(args, name, value)
    return args


async def run(workload: str, server, roster, **values):
    watch = ProcessWatch([server.pid])
    context = Context(
        target=target_from_url(server.base_url),
        roster=roster,
        checkpoints=InProcess(watch),
        deadline=time.monotonic() + 60,
    )
    outcome = await WORKLOADS[workload].run(context, arguments(workload, **values))
    outcome.server = watch.report()
    return outcome


def refusals(outcome) -> dict:
    return {name: count for name, count in outcome.counts.items() if ":" in name}


async def test_connections(taxi_server, make_roster):
    roster = await make_roster(riders=15, drivers=5)
    outcome = await run(
        "connections", taxi_server, roster, sockets=20, concurrency=5, hold=0.2, ping_seconds=0.2
    )
    assert outcome.counts["opened"] == 20
    assert len(outcome.latency["connect"]) == 20
    assert (outcome.tally.expected, outcome.tally.received, outcome.tally.lost) == (20, 20, 0)
    assert outcome.server["rss_bytes"]["holding"] > 0
    assert refusals(outcome) == {}


async def test_course_protocol_connections(taxi_server, make_roster):
    roster = await make_roster(riders=5, drivers=0)
    outcome = await run(
        "connections", taxi_server, roster, sockets=5, hold=0.1, ping_seconds=0.1, protocol="course"
    )
    assert (outcome.tally.received, outcome.tally.lost) == (5, 0)


async def test_rest_trip_list(taxi_server, make_roster):
    roster = await make_roster(riders=4, drivers=0)
    outcome = await run("rest", taxi_server, roster, concurrency=4, duration=0.5)
    assert outcome.counts["ok"] > 0
    assert refusals(outcome) == {}


async def test_rest_log_in(taxi_server, make_roster):
    roster = await make_roster(riders=2, drivers=0)
    outcome = await run("rest", taxi_server, roster, endpoint="log-in", concurrency=2, requests=2)
    assert outcome.counts["ok"] == 2
    assert refusals(outcome) == {}


async def test_trip_updates(taxi_server, make_roster):
    roster = await make_roster(riders=4, drivers=4)
    outcome = await run("trip-updates", taxi_server, roster, pairs=4, rate=16, duration=1.5)
    tally = outcome.tally
    assert tally.expected == 4 * 4  # each pair: one whole round of four steps
    assert (tally.received, tally.lost, tally.duplicates, tally.unexpected) == (16, 0, 0, 0)
    # Counted over the one round offered (a second), not the 1.5 s the run could have had.
    assert outcome.rate(tally.received, "measured") >= 0.8 * 16
    assert set(outcome.latency) == {"REQUESTED", "STARTED", "IN_PROGRESS", "COMPLETED"}
    assert refusals(outcome) == {}


async def test_a_trip_made_too_late_to_accept_is_canceled_and_its_pair_goes_on(
    taxi_server, make_roster, monkeypatch
):
    learn = Rounds.learn

    def first_trip_learnt_late(self, request_id, trip_id):
        where = self.by_request.get(request_id)
        if where == (0, 0):
            # Its `trip.requested` arrives on time; the driver hears of its trip only
            # after the accept gave up waiting for it (from 1 s after the request, for
            # two periods of 1 s), and before the pair's next request (4 s after).
            asyncio.get_running_loop().call_later(3.5, learn, self, request_id, trip_id)
            return where
        return learn(self, request_id, trip_id)

    monkeypatch.setattr(Rounds, "learn", first_trip_learnt_late)
    roster = await make_roster(riders=2, drivers=2)
    outcome = await run("trip-updates", taxi_server, roster, pairs=2, rate=2, duration=8.5)

    tally = outcome.tally
    assert tally.expected == 2 * 2 * 4  # two rounds of four steps for each pair
    # The late round's accept, pick-up and drop-off; the pair's next round all arrives.
    assert (tally.received, tally.lost, tally.duplicates, tally.unexpected) == (13, 3, 0, 0)
    assert outcome.counts["no_trip_to_accept"] == 1
    assert outcome.counts["late_requests_canceled"] == 1
    assert refusals(outcome) == {}


@needs_positions
async def test_tracking(taxi_server, make_roster):
    roster = await make_roster(riders=3, drivers=3)
    # 1.5 a second, as the suite runs it: below the 2 a second the server accepts from a
    # driver, which leaves room for the positions its own delays bunch up.
    outcome = await run("tracking", taxi_server, roster, pairs=3, rate=1.5, duration=2.0)
    assert outcome.counts["pairs"] == 3
    assert outcome.tally.expected == 3 * 3
    assert (outcome.tally.lost, outcome.tally.duplicates, outcome.tally.unexpected) == (0, 0, 0)
    assert refusals(outcome) == {}


@needs_positions
async def test_dispatch(taxi_server, make_roster):
    # The server offers each request to its DISPATCH_DRIVERS (10) nearest drivers.
    roster = await make_roster(riders=4, drivers=30)
    outcome = await run(
        "dispatch", taxi_server, roster, drivers=30, riders=4, rate=4.0, offered=10, duration=1.0
    )
    assert outcome.counts["drivers online"] == 30
    assert len(outcome.latency["last offer"]) == 4
    assert (outcome.tally.lost, outcome.tally.unexpected) == (0, 0)
    assert refusals(outcome) == {}


@pytest.mark.django_db(transaction=True)
async def test_users_made_over_the_rest_api_are_reused(taxi_server, tmp_path):
    target = target_from_url(taxi_server.base_url)
    first = await provision_over_rest(target, riders=1, drivers=1)
    again = await provision_over_rest(target, riders=1, drivers=1)
    assert [user.username for user in first.riders + first.drivers] == [
        "bench-rider-1",
        "bench-driver-1",
    ]
    assert [user.id for user in again.riders + again.drivers] == [
        user.id for user in first.riders + first.drivers
    ]
    first.save(tmp_path / "users.json")
    assert Roster.load(tmp_path / "users.json").drivers[0].role == "driver"
