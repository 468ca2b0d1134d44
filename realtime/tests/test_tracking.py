"""The assigned driver's positions: to the trip's rider only, checked, kept as a trail."""

import asyncio
import itertools
import math
import os
import threading
from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.utils import timezone

from dispatch.geo import distance_m
from dispatch.tracking import last_positions
from realtime.delivery import user_group
from trips.models import TrailSegment
from trips.trail import trail_points

pytestmark = pytest.mark.django_db(transaction=True)

START = (52.3700, 4.8900)


@pytest.fixture
def tracking_settings(settings):
    settings.POSITION_MIN_INTERVAL_SECONDS = 0
    settings.TRAIL_BATCH_SIZE = 3
    return settings


@pytest.fixture
async def on_a_trip(open_socket, rider, driver, make_trip):
    """A native rider and driver whose trip has started."""
    trip = await sync_to_async(make_trip)(rider, status="STARTED", driver=driver)
    rider_socket = await open_socket(rider, native=True)
    driver_socket = await open_socket(driver, native=True)
    return rider_socket, driver_socket, str(trip.id)


def position(lat, lng, **extra) -> dict:
    return {"lat": lat, "lng": lng, "timestamp": timezone.now().timestamp(), **extra}


async def send_position(socket, data: dict, request_id: str = "p") -> None:
    await socket.send({"type": "driver.location", "request_id": request_id, "data": data})


async def handled(socket) -> None:
    """Wait until the socket has handled everything sent before: it answers in order."""
    await socket.send({"type": "ping", "data": "handled?"})
    assert await socket.receive() == {"type": "pong", "data": "handled?"}


async def trail_path(trip_id):
    return [(point.lat, point.lng) for point in await sync_to_async(trail_points)(trip_id)]


async def trail_segments(trip_id) -> int:
    return await TrailSegment.objects.filter(trip_id=trip_id).acount()


async def test_a_position_reaches_the_trips_rider_and_nobody_else(
    tracking_settings, on_a_trip, open_socket, rider, make_user
):
    rider_socket, driver_socket, trip_id = on_a_trip
    course_socket_of_rider = await open_socket(rider)
    other_rider = await open_socket(await sync_to_async(make_user)("rider"), native=True)
    other_driver = await open_socket(await sync_to_async(make_user)("driver"), native=True)

    await send_position(driver_socket, position(*START, heading=90, speed=8.5, accuracy=5))

    message = await rider_socket.receive()
    assert message["type"] == "driver.location"
    data = message["data"]
    assert data["trip_id"] == trip_id
    assert data["driver_id"] == driver_socket.user.id
    assert (data["lat"], data["lng"], data["heading"], data["speed"]) == (*START, 90, 8.5)
    assert data["recorded_at"].endswith("Z")
    for socket in (course_socket_of_rider, other_rider, other_driver, driver_socket):
        assert await socket.receive_nothing()


async def test_positions_and_events_are_handled_without_a_thread_hop(
    tracking_settings, on_a_trip, monkeypatch
):
    """Channels would close stale database connections on its one sync thread before
    every message; a position (received and relayed) must not queue for that thread."""
    hops = []

    async def close_old_connections_hop():
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", close_old_connections_hop)
    monkeypatch.setattr(
        "channels.generic.websocket.aclose_old_connections", close_old_connections_hop
    )
    rider_socket, driver_socket, _ = on_a_trip

    await send_position(driver_socket, position(*START))
    assert (await rider_socket.receive())["type"] == "driver.location"
    await handled(driver_socket)
    await rider_socket.communicator.disconnect()

    assert hops == []


async def test_positions_and_events_need_no_task_each(tracking_settings, on_a_trip):
    """Channels' loop makes a task to read each next message, on both sockets; the
    consumer's readers live as long as the socket."""
    tracking_settings.TRAIL_BATCH_SIZE = 100  # no trail write in this test
    rider_socket, driver_socket, _ = on_a_trip
    # A first position starts what lives as long as the loop: the outboxes' writers.
    await send_position(driver_socket, position(*START), request_id="first")
    assert (await rider_socket.receive())["type"] == "driver.location"
    loop = asyncio.get_running_loop()
    made = []

    def counted(loop, coroutine, **kwargs):
        # Not counted: redis-py's tasks (it shields each command's send, and each
        # connection's return to its pool, in one) and the in-memory layer's (a task
        # for each member of a group it sends to).
        redis_own = f"{os.sep}redis{os.sep}" in coroutine.cr_code.co_filename
        if not redis_own and coroutine.__qualname__ != "InMemoryChannelLayer.send":
            made.append(coroutine.__qualname__)
        return asyncio.Task(coroutine, loop=loop, **kwargs)

    loop.set_task_factory(counted)
    try:
        for n in range(10):
            await send_position(driver_socket, position(*START), request_id=f"p{n}")
            assert (await rider_socket.receive())["type"] == "driver.location"
        await handled(driver_socket)
    finally:
        loop.set_task_factory(None)

    assert made == []


async def test_a_socket_handles_one_message_at_a_time(on_a_trip, monkeypatch, channel_layer):
    """An event for a socket waits while the socket's own request is being carried
    out, and comes after it."""
    rider_socket, _, trip_id = on_a_trip
    started, release = threading.Event(), threading.Event()

    def command_execute_slowly(user, command, origin):
        started.set()
        release.wait(timeout=5)
        return user

    monkeypatch.setattr("realtime.consumers.command_execute", command_execute_slowly)
    await rider_socket.send({"type": "trip.cancel", "data": {"trip_id": trip_id}})
    assert await sync_to_async(started.wait, thread_sensitive=False)(timeout=5)

    where = {"trip_id": trip_id, "lat": START[0], "lng": START[1]}
    await channel_layer.group_send(
        user_group(rider_socket.user.id), {"type": "driver.location", "position": where}
    )
    try:
        assert await rider_socket.receive_nothing(timeout=0.3)
    finally:
        release.set()
    assert await rider_socket.receive() == {"type": "driver.location", "data": where}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"lat": 91, "lng": 0}, "out_of_range"),
        ({"lat": "north", "lng": 0}, "invalid"),
        ({"lng": 4.89}, "invalid"),
        ({"lat": 52.37, "lng": 4.89, "accuracy": 500}, "inaccurate"),
        ({"lat": 52.37, "lng": 4.89, "timestamp": "2026-11-24T09:00:00+00:00"}, "in_future"),
        ({"lat": 52.37, "lng": 4.89, "timestamp": "2026-11-24T07:00:00+00:00"}, "stale"),
    ],
)
async def test_a_refused_position_gets_an_error_and_changes_nothing(
    tracking_settings, clock, on_a_trip, data, code
):
    rider_socket, driver_socket, trip_id = on_a_trip

    await send_position(driver_socket, data, request_id="bad")

    refusal = await driver_socket.receive()
    assert refusal["type"] == "error"
    assert refusal["request_id"] == "bad"
    assert refusal["error"]["code"] == code
    assert refusal["error"]["request_type"] == "driver.location"
    assert await rider_socket.receive_nothing()
    tracking_settings.TRAIL_BATCH_SIZE = 1
    await driver_socket.send(
        {"type": "trip.advance", "data": {"trip_id": trip_id, "status": "IN_PROGRESS"}}
    )
    await driver_socket.receive()
    assert await trail_path(trip_id) == []


async def test_after_a_stall_a_burst_of_positions_is_accepted_up_to_the_burst_size(
    tracking_settings, clock, on_a_trip
):
    # Long slots, so the moments the test itself takes do not free one.
    tracking_settings.POSITION_MIN_INTERVAL_SECONDS = 10
    tracking_settings.POSITION_BURST = 3
    rider_socket, driver_socket, trip_id = on_a_trip
    await send_position(driver_socket, position(*START))
    await rider_socket.receive()

    # The server was away while the client queued a position a second: they come at once.
    clock.shift(60)
    sent_at = timezone.now().timestamp()
    queued = [position(*START, timestamp=sent_at - 4 + number) for number in range(4)]
    for number, data in enumerate(queued):
        await send_position(driver_socket, data, f"queued-{number}")

    for data in queued[:3]:
        delivered = (await rider_socket.receive())["data"]
        recorded_at = datetime.fromisoformat(delivered["recorded_at"]).timestamp()
        assert recorded_at == pytest.approx(data["timestamp"])
    refusal = await driver_socket.receive()
    assert (refusal["request_id"], refusal["error"]["code"]) == ("queued-3", "too_frequent")
    assert await rider_socket.receive_nothing()
    await driver_socket.send(
        {"type": "trip.advance", "data": {"trip_id": trip_id, "status": "IN_PROGRESS"}}
    )
    await driver_socket.receive()
    assert await trail_path(trip_id) == [START] * 4  # the first, and three of the queue


async def test_too_fast_compares_with_the_last_accepted_position(
    tracking_settings, clock, on_a_trip
):
    rider_socket, driver_socket, _ = on_a_trip
    await send_position(driver_socket, position(*START))
    await rider_socket.receive()

    clock.shift(10)
    await send_position(driver_socket, position(START[0] + 0.5, START[1]), "jump")
    assert (await driver_socket.receive())["error"]["code"] == "too_fast"
    assert await rider_socket.receive_nothing()

    await send_position(driver_socket, position(START[0] + 0.0005, START[1]), "fine")
    assert (await rider_socket.receive())["data"]["lat"] == pytest.approx(START[0] + 0.0005)


async def test_only_drivers_report_positions(tracking_settings, on_a_trip):
    rider_socket, driver_socket, _ = on_a_trip

    await send_position(rider_socket, position(*START))

    assert (await rider_socket.receive())["error"]["code"] == "wrong_role"
    assert await driver_socket.receive_nothing()


async def test_a_reconnecting_rider_gets_the_last_position_in_the_snapshot(
    tracking_settings, clock, on_a_trip, open_socket, rider
):
    rider_socket, driver_socket, trip_id = on_a_trip
    await send_position(driver_socket, position(*START))
    first = (await rider_socket.receive())["data"]
    clock.shift(5)
    await send_position(driver_socket, position(START[0] + 0.0002, START[1]))
    last = (await rider_socket.receive())["data"]
    await rider_socket.communicator.disconnect()

    again = await open_socket(rider, native=True)

    assert again.snapshot["positions"] == {trip_id: last}
    assert last != first


async def test_the_last_position_is_kept_once_in_a_while_and_the_latest_when_the_socket_closes(
    tracking_settings, clock, on_a_trip, open_socket, rider
):
    tracking_settings.LAST_POSITION_KEEP_SECONDS = 3
    rider_socket, driver_socket, trip_id = on_a_trip

    async def shared(lat) -> dict:
        clock.shift(1)
        await send_position(driver_socket, position(lat, START[1]))
        return (await rider_socket.receive())["data"]

    async def snapshot_position() -> dict:
        socket = await open_socket(rider, native=True)
        await socket.communicator.disconnect()
        return socket.snapshot["positions"][trip_id]

    first = await shared(START[0])
    second = await shared(START[0] + 0.0001)  # a second later: not written
    assert await snapshot_position() == first
    await shared(START[0] + 0.0002)
    fourth = await shared(START[0] + 0.0003)  # three seconds after the first: written
    assert await snapshot_position() == fourth
    fifth = await shared(START[0] + 0.0004)
    assert second != first and fifth != fourth

    await driver_socket.communicator.disconnect()

    assert await snapshot_position() == fifth


async def test_a_step_of_the_trip_keeps_the_latest_position_first(
    tracking_settings, clock, on_a_trip
):
    tracking_settings.LAST_POSITION_KEEP_SECONDS = 3
    rider_socket, driver_socket, trip_id = on_a_trip
    await send_position(driver_socket, position(*START))
    await rider_socket.receive()
    clock.shift(1)
    await send_position(driver_socket, position(START[0] + 0.0001, START[1]))
    latest = (await rider_socket.receive())["data"]

    await driver_socket.send(
        {"type": "trip.advance", "data": {"trip_id": trip_id, "status": "IN_PROGRESS"}}
    )
    assert (await driver_socket.receive())["data"]["trip"]["status"] == "IN_PROGRESS"

    assert await last_positions().positions_of([trip_id]) == {trip_id: latest}


async def test_the_trail_is_written_in_batches_and_measured_at_the_end(
    tracking_settings, clock, on_a_trip, client_for, rider, django_assert_max_num_queries
):
    rider_socket, driver_socket, trip_id = on_a_trip
    path = [(START[0] + step * 0.001, START[1] + step * 0.001) for step in range(5)]

    for number, (lat, lng) in enumerate(path[:2]):
        clock.shift(5)
        await send_position(driver_socket, position(lat, lng))
        await rider_socket.receive()
        await handled(driver_socket)
        assert await trail_path(trip_id) == []  # not one write per position
        assert number < 2
    clock.shift(5)
    await send_position(driver_socket, position(*path[2]))
    await rider_socket.receive()
    await handled(driver_socket)
    assert await trail_path(trip_id) == path[:3]
    assert await trail_segments(trip_id) == 1  # the batch, in one write

    await driver_socket.send(
        {"type": "trip.advance", "data": {"trip_id": trip_id, "status": "IN_PROGRESS"}}
    )
    await driver_socket.receive()
    for lat, lng in path[3:]:
        clock.shift(5)
        await send_position(driver_socket, position(lat, lng))
    await driver_socket.send(
        {"type": "trip.advance", "data": {"trip_id": trip_id, "status": "COMPLETED"}}
    )
    completed = (await driver_socket.receive())["data"]["trip"]

    expected = sum(distance_m(*a, *b) for a, b in itertools.pairwise(path))
    assert completed["distance_m"] == pytest.approx(expected)
    assert math.isclose(expected, 4 * 131.0, rel_tol=0.05)  # ~131 m a step at this latitude
    client = await sync_to_async(client_for)(rider)
    trail = (await sync_to_async(client.get)(f"/api/trip/{trip_id}/trail/")).json()
    assert [(point["lat"], point["lng"]) for point in trail] == path
    assert all(point["measured_at"] for point in trail)


async def test_a_sockets_first_batch_is_shortened_by_its_head_start(
    tracking_settings, trail_head_start, clock, open_socket, rider, driver, make_trip
):
    trail_head_start["points"] = 2  # of a batch of 3
    trip = await sync_to_async(make_trip)(rider, status="STARTED", driver=driver)
    rider_socket = await open_socket(rider, native=True)
    driver_socket = await open_socket(driver, native=True)
    path = [(START[0] + step * 0.001, START[1]) for step in range(4)]

    written_after_each = []
    for lat, lng in path:
        clock.shift(5)
        await send_position(driver_socket, position(lat, lng))
        await rider_socket.receive()
        await handled(driver_socket)
        written_after_each.append(len(await trail_path(trip.id)))

    assert written_after_each == [1, 1, 1, 4]  # the first point alone, then a whole batch


async def test_positions_over_rest_reach_the_rider(
    tracking_settings, on_a_trip, client_for, driver
):
    rider_socket, _, trip_id = on_a_trip
    client = await sync_to_async(client_for)(driver)

    response = await sync_to_async(client.post)(
        "/api/driver/location/", position(*START), format="json"
    )

    assert response.status_code == 202
    message = await rider_socket.receive()
    assert (message["type"], message["data"]["trip_id"]) == ("driver.location", trip_id)
    assert await trail_path(trip_id) == [START]


async def test_a_previous_position_stored_by_an_older_release_is_not_read(
    tracking_settings, on_a_trip, client_for, driver
):
    """During a rolling deploy the processes of the last release still store positions
    in their own shape (here, one without the rate bound's `next_slot_at`)."""
    rider_socket, _, _ = on_a_trip
    older = {"lat": 0.0, "lng": 0.0, "heading": None, "speed": None, "accuracy": None}
    older |= {"measured_at": 0.0, "received_at": 0.0}
    await sync_to_async(cache.set)(f"driver-position:{driver.pk}", older)
    client = await sync_to_async(client_for)(driver)

    response = await sync_to_async(client.post)(
        "/api/driver/location/", position(*START), format="json"
    )

    assert response.status_code == 202
    assert (await rider_socket.receive())["type"] == "driver.location"


async def test_positions_over_rest_are_held_to_the_same_rate(
    tracking_settings, on_a_trip, client_for, driver
):
    # Long slots, so the moments the test itself takes do not free one.
    tracking_settings.POSITION_MIN_INTERVAL_SECONDS = 10
    tracking_settings.POSITION_BURST = 3
    rider_socket, _, trip_id = on_a_trip
    client = await sync_to_async(client_for)(driver)
    sent_at = timezone.now().timestamp()

    responses = [
        await sync_to_async(client.post)(
            "/api/driver/location/", position(*START, timestamp=sent_at - 4 + number), format="json"
        )
        for number in range(4)
    ]

    assert [response.status_code for response in responses] == [202, 202, 202, 400]
    assert responses[-1].json()["code"] == "too_frequent"
    for _ in range(3):
        assert (await rider_socket.receive())["type"] == "driver.location"
    assert await rider_socket.receive_nothing()
    assert await trail_path(trip_id) == [START] * 3


async def test_a_refused_position_over_rest_is_a_400(tracking_settings, client_for, driver):
    client = await sync_to_async(client_for)(driver)

    response = await sync_to_async(client.post)(
        "/api/driver/location/", {"lat": 100, "lng": 0}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "out_of_range"


async def test_a_trail_is_visible_only_to_those_who_may_see_the_trip(
    tracking_settings, on_a_trip, client_for, make_user
):
    _, _, trip_id = on_a_trip
    stranger = await sync_to_async(make_user)("rider")
    client = await sync_to_async(client_for)(stranger)

    response = await sync_to_async(client.get)(f"/api/trip/{trip_id}/trail/")

    assert response.status_code == 404
