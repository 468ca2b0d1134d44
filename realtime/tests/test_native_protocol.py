"""The native protocol `taxi.v2`, as docs/protocol.md states it, through real sockets on
the real ASGI app: replies that name the request they answer, events to exactly the
sockets the contract names, and refusals that change nothing and tell nobody else."""

import asyncio
import json
import uuid
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from realtime.tests.conftest import course_trip_request, course_update

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESSES = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}
TRIP_EVENTS = {
    "trip.requested",
    "trip.offered",
    "trip.accepted",
    "trip.updated",
    "trip.canceled",
    "trip.no_driver_found",
}
NATIVE_ONLY = TRIP_EVENTS | {"snapshot", "trip.taken", "driver.status", "pong"}
FINAL_STATUSES = {"COMPLETED", "CANCELED"}


def message(kind: str, data=None, request_id: str | None = None) -> dict:
    """A message as the native protocol writes it: `data` and `request_id` when given."""
    written: dict = {"type": kind}
    if data is not None:
        written["data"] = data
    if request_id is not None:
        written["request_id"] = request_id
    return written


def refusal(code: str, text: str, request_type=None, request_id=None, **extra) -> dict:
    """The `error` message the contract describes."""
    body = {"code": code, "message": text, **extra}
    if request_type is not None:
        body["request_type"] = request_type
    return message("error", request_id=request_id) | {"error": body}


async def quiet(*sockets) -> bool:
    """Whether none of these sockets received anything."""
    return all(await asyncio.gather(*(socket.receive_nothing() for socket in sockets)))


async def next_heard(socket) -> dict | None:
    """The next message, or None if nothing comes. (A communicator's timed-out `receive`
    cancels the app, so a test that expects a message the server may not send asks
    this way.)"""
    if await socket.receive_nothing(timeout=0.5):
        return None
    return await socket.receive()


async def still_usable(socket) -> None:
    await socket.send(message("ping", {"still": "here"}, "ping-after"))
    assert await socket.receive() == message("pong", {"still": "here"}, "ping-after")


async def send_raw(socket, frame) -> None:
    """Send a text frame (`str`), a binary frame (`bytes`) or a message (anything else),
    as a server hands them to the app: empty frames included."""
    if isinstance(frame, bytes):
        await socket.communicator.send_input({"type": "websocket.receive", "bytes": frame})
    elif isinstance(frame, str):
        await socket.communicator.send_input({"type": "websocket.receive", "text": frame})
    else:
        await socket.send(frame)


async def go_online(socket, request_id: str = "online"):
    await socket.send(message("driver.online", request_id=request_id))
    assert await socket.receive() == message("driver.status", {"online": True}, request_id)
    return socket


@pytest.fixture
async def open_socket(open_socket):
    """The shared `open_socket`, closing this test's sockets all at once at its end: on
    the Redis channel layer a closing socket may wait for its pending read of the layer
    (up to a second), and one socket after another that adds up to seconds a test."""
    opened = []

    async def open_(*args, **kwargs):
        socket = await open_socket(*args, **kwargs)
        opened.append(socket)
        return socket

    yield open_
    await asyncio.gather(*(socket.communicator.disconnect() for socket in opened))


@pytest.fixture
def new_user(make_user):
    async def new(role: str = "rider", **fields):
        return await sync_to_async(make_user)(role, **fields)

    return new


@pytest.fixture
def trips_now():
    """Every trip row, every column: equal before and after means nothing was written."""
    from trips.models import Trip

    async def read() -> list[dict]:
        return await sync_to_async(lambda: list(Trip.objects.order_by("id").values()))()

    return read


@pytest.fixture
async def native(open_socket, rider, driver, new_user):
    """A native rider; the driver who will take the trip and another driver, both
    online; a driver who never went online; and a rider who is not involved."""
    parties = SimpleNamespace(
        rider=await open_socket(rider, native=True),
        driver=await go_online(await open_socket(driver, native=True)),
        other=await go_online(await open_socket(await new_user("driver"), native=True)),
        offline=await open_socket(await new_user("driver"), native=True),
        stranger=await open_socket(await new_user("rider"), native=True),
    )
    parties.everyone = (
        parties.rider,
        parties.driver,
        parties.other,
        parties.offline,
        parties.stranger,
    )
    return parties


async def request_trip(parties, request_id: str = "r-request") -> dict:
    """The rider requests a trip; both online drivers are offered it."""
    await parties.rider.send(message("trip.request", ADDRESSES, request_id))
    requested = await parties.rider.receive()
    assert requested["type"] == "trip.requested"
    assert requested["request_id"] == request_id
    trip = requested["data"]["trip"]
    for driver_socket in (parties.driver, parties.other):
        assert await driver_socket.receive() == message("trip.offered", {"trip": trip})
    return trip


async def accept_trip(parties, trip: dict, request_id: str = "r-accept") -> dict:
    """`parties.driver` accepts; the rider hears it and the other driver hears it is gone."""
    await parties.driver.send(message("trip.accept", {"trip_id": trip["id"]}, request_id))
    accepted = await parties.driver.receive()
    assert accepted["type"] == "trip.accepted"
    assert accepted["request_id"] == request_id
    assert await parties.rider.receive() == message("trip.accepted", accepted["data"])
    assert await parties.other.receive() == message("trip.taken", {"trip_id": trip["id"]})
    return accepted["data"]["trip"]


async def accept_trip_quietly(parties, trip: dict) -> None:
    """`parties.driver` accepts; the parties' copies are read and left unchecked."""
    await parties.driver.send(message("trip.accept", {"trip_id": trip["id"]}))
    assert (await parties.driver.receive())["type"] == "trip.accepted"
    assert (await parties.rider.receive())["type"] == "trip.accepted"


async def advance_trip(parties, trip: dict, status: str) -> dict:
    request_id = f"r-{status}"
    await parties.driver.send(
        message("trip.advance", {"trip_id": trip["id"], "status": status}, request_id)
    )
    updated = await parties.driver.receive()
    assert updated["type"] == "trip.updated"
    assert updated["request_id"] == request_id
    assert updated["data"]["trip"]["status"] == status
    assert await parties.rider.receive() == message("trip.updated", updated["data"])
    return updated["data"]["trip"]


# --- Connecting ----------------------------------------------------------------------------


async def test_the_snapshot_of_a_new_user_is_empty(open_socket, rider, driver):
    rider_socket = await open_socket(rider, native=True)
    driver_socket = await open_socket(driver, native=True)

    assert rider_socket.snapshot["trips"] == []
    assert rider_socket.snapshot["online"] is False
    assert rider_socket.snapshot["user"]["id"] == rider.id
    assert rider_socket.snapshot["user"]["group"] == "rider"
    assert driver_socket.snapshot["trips"] == []
    assert driver_socket.snapshot["online"] is False
    assert driver_socket.snapshot["user"]["id"] == driver.id
    assert await quiet(rider_socket, driver_socket)


async def test_reconnecting_gives_a_snapshot_with_the_active_trip(native, open_socket, rider):
    trip = await request_trip(native)
    trip = await accept_trip(native, trip)
    await native.rider.communicator.disconnect()
    await native.driver.communicator.disconnect()

    rider_again = await open_socket(rider, native=True)
    driver_again = await open_socket(native.driver.user, native=True)

    assert rider_again.snapshot["trips"] == [trip]
    assert rider_again.snapshot["online"] is False
    assert driver_again.snapshot["trips"] == [trip]
    # A native driver is open for requests only after saying so, on every socket.
    assert driver_again.snapshot["online"] is False


async def test_a_driver_reconnecting_during_a_trip_is_not_offered_requests(
    native, open_socket, new_user
):
    trip = await request_trip(native)
    await accept_trip(native, trip)
    await native.driver.communicator.disconnect()
    driver_again = await go_online(await open_socket(native.driver.user, native=True))
    other_rider = await open_socket(await new_user("rider"), native=True)

    await other_rider.send(message("trip.request", ADDRESSES))

    new_trip = (await other_rider.receive())["data"]["trip"]
    assert await native.other.receive() == message("trip.offered", {"trip": new_trip})
    assert await quiet(driver_again)


async def test_a_native_driver_is_not_offered_requests_until_online(open_socket, rider, driver):
    rider_socket = await open_socket(rider, native=True)
    driver_socket = await open_socket(driver, native=True)

    await rider_socket.send(message("trip.request", ADDRESSES))

    assert (await rider_socket.receive())["type"] == "trip.requested"
    assert await quiet(driver_socket)


# --- Driver availability -------------------------------------------------------------------


async def test_driver_online_answers_with_driver_status(open_socket, driver):
    driver_socket = await open_socket(driver, native=True)

    await driver_socket.send(message("driver.online", request_id="r-17"))

    assert await driver_socket.receive() == message("driver.status", {"online": True}, "r-17")
    await driver_socket.send(message("driver.offline"))
    assert await driver_socket.receive() == message("driver.status", {"online": False})


async def test_an_offline_driver_is_offered_nothing(native):
    await native.driver.send(message("driver.offline", request_id="r-off"))
    assert await native.driver.receive() == message("driver.status", {"online": False}, "r-off")

    await native.rider.send(message("trip.request", ADDRESSES))

    trip = (await native.rider.receive())["data"]["trip"]
    assert await native.other.receive() == message("trip.offered", {"trip": trip})
    assert await quiet(native.driver, native.offline)


async def test_going_online_is_heard_on_every_socket_of_the_driver(open_socket, driver):
    phone = await open_socket(driver, native=True)
    tablet = await open_socket(driver, native=True)

    await go_online(phone, "r-on")

    assert await next_heard(tablet) == message("driver.status", {"online": True})


# --- A trip, event by event ----------------------------------------------------------------


async def test_a_request_is_answered_and_offered(native, open_socket, trips_now):
    rider_tablet = await open_socket(native.rider.user, native=True)

    await native.rider.send(message("trip.request", ADDRESSES, "r-1"))

    requested = await native.rider.receive()
    assert requested["type"] == "trip.requested"
    assert requested["request_id"] == "r-1"
    trip = requested["data"]["trip"]
    assert trip["status"] == "REQUESTED"
    assert trip["rider"]["id"] == native.rider.user.id
    assert trip["driver"] is None
    assert trip["pick_up_address"] == ADDRESSES["pick_up_address"]
    # The rider's other socket hears the same event, but it did not ask: no request_id.
    assert await rider_tablet.receive() == message("trip.requested", {"trip": trip})
    for driver_socket in (native.driver, native.other):
        assert await driver_socket.receive() == message("trip.offered", {"trip": trip})
    assert await quiet(*native.everyone, rider_tablet)
    [row] = await trips_now()
    assert str(row["id"]) == trip["id"]
    assert row["request_id"] == "r-1"


async def test_coordinates_are_kept(native):
    point = {"pick_up_lat": 52.37, "pick_up_lng": 4.89, "drop_off_lat": -33.9, "drop_off_lng": 18.4}

    await native.rider.send(message("trip.request", ADDRESSES | point))

    trip = (await native.rider.receive())["data"]["trip"]
    assert {key: trip[key] for key in point} == point


async def test_an_accept_is_heard_by_both_parties_and_the_others_are_told(native, trip_in_db):
    trip = await request_trip(native)

    await native.driver.send(message("trip.accept", {"trip_id": trip["id"]}, "r-2"))

    accepted = await native.driver.receive()
    assert accepted["type"] == "trip.accepted"
    assert accepted["request_id"] == "r-2"
    assert accepted["data"]["trip"]["status"] == "STARTED"
    assert accepted["data"]["trip"]["driver"]["id"] == native.driver.user.id
    assert await native.rider.receive() == message("trip.accepted", accepted["data"])
    assert await native.other.receive() == message("trip.taken", {"trip_id": trip["id"]})
    assert await quiet(*native.everyone)
    row = await trip_in_db(trip["id"])
    assert row.status == "STARTED" and row.driver_id == native.driver.user.id


async def test_a_driver_offered_the_trip_hears_it_is_taken_after_going_offline(native):
    trip = await request_trip(native)
    await native.other.send(message("driver.offline"))
    await native.other.receive()

    await accept_trip_quietly(native, trip)

    assert await next_heard(native.other) == message("trip.taken", {"trip_id": trip["id"]})


async def test_the_driver_advances_the_trip_to_its_end(native, trip_in_db):
    trip = await accept_trip(native, await request_trip(native))

    in_progress = await advance_trip(native, trip, "IN_PROGRESS")
    assert in_progress["picked_up_at"] is not None
    assert await quiet(*native.everyone)
    completed = await advance_trip(native, in_progress, "COMPLETED")
    assert completed["completed_at"] is not None

    assert await quiet(*native.everyone)
    assert (await trip_in_db(trip["id"])).status == "COMPLETED"


async def test_the_rider_cancels_an_open_request(native, trip_in_db):
    trip = await request_trip(native)

    await native.rider.send(message("trip.cancel", {"trip_id": trip["id"]}, "r-cancel"))

    canceled = await native.rider.receive()
    assert canceled["type"] == "trip.canceled"
    assert canceled["request_id"] == "r-cancel"
    assert canceled["data"]["trip"]["status"] == "CANCELED"
    assert canceled["data"]["trip"]["cancel_reason"] == "rider"
    # The drivers it was offered to learn that the request is gone.
    for driver_socket in (native.driver, native.other):
        assert await driver_socket.receive() == message("trip.canceled", canceled["data"])
    assert await quiet(*native.everyone)
    assert (await trip_in_db(trip["id"])).status == "CANCELED"


async def test_the_rider_cancels_after_a_driver_accepted(native, trip_in_db):
    trip = await accept_trip(native, await request_trip(native))

    await native.rider.send(message("trip.cancel", {"trip_id": trip["id"]}, "r-cancel"))

    canceled = await native.rider.receive()
    assert canceled["type"] == "trip.canceled"
    assert canceled["request_id"] == "r-cancel"
    assert await native.driver.receive() == message("trip.canceled", canceled["data"])
    assert await quiet(*native.everyone)
    assert (await trip_in_db(trip["id"])).status == "CANCELED"


async def test_the_driver_drops_out_and_the_trip_is_offered_again(native, trip_in_db):
    trip = await accept_trip(native, await request_trip(native))

    await native.driver.send(message("trip.cancel", {"trip_id": trip["id"]}, "r-drop"))

    reopened = await native.driver.receive()
    assert reopened["type"] == "trip.updated"
    assert reopened["request_id"] == "r-drop"
    assert reopened["data"]["trip"]["status"] == "REQUESTED"
    assert reopened["data"]["trip"]["driver"] is None
    assert await native.rider.receive() == message("trip.updated", reopened["data"])
    assert await native.other.receive() == message("trip.offered", reopened["data"])
    assert await quiet(*native.everyone)  # not offered to the driver who left it
    row = await trip_in_db(trip["id"])
    assert row.status == "REQUESTED" and row.driver_id is None


async def test_after_a_trip_the_driver_is_offered_requests_again(native, new_user, open_socket):
    trip = await accept_trip(native, await request_trip(native))
    await advance_trip(native, trip, "IN_PROGRESS")
    await advance_trip(native, trip, "COMPLETED")
    next_rider = await open_socket(await new_user("rider"), native=True)

    await next_rider.send(message("trip.request", ADDRESSES))

    next_trip = (await next_rider.receive())["data"]["trip"]
    for driver_socket in (native.driver, native.other):
        assert await driver_socket.receive() == message("trip.offered", {"trip": next_trip})


async def test_a_busy_driver_is_not_offered_requests(native, new_user, open_socket):
    await accept_trip(native, await request_trip(native))
    next_rider = await open_socket(await new_user("rider"), native=True)

    await next_rider.send(message("trip.request", ADDRESSES))

    next_trip = (await next_rider.receive())["data"]["trip"]
    assert await native.other.receive() == message("trip.offered", {"trip": next_trip})
    assert await quiet(*native.everyone)


@pytest.mark.parametrize("data", [{"n": 1, "list": [1, "two"]}, "text", 17, None, [1, 2]])
async def test_ping_is_answered_with_pong(open_socket, rider, data):
    socket = await open_socket(rider, native=True)

    await socket.send({"type": "ping", "data": data, "request_id": "p-1"})

    assert await socket.receive() == {"type": "pong", "data": data, "request_id": "p-1"}


# --- Idempotent requests -------------------------------------------------------------------


async def test_a_repeated_request_makes_one_trip(native, open_socket, trip_count):
    rider_tablet = await open_socket(native.rider.user, native=True)
    request = message("trip.request", ADDRESSES, "r-same")

    await native.rider.send(request)
    await native.rider.send(request)

    first = await native.rider.receive()
    second = await native.rider.receive()
    assert first["type"] == "trip.requested"
    assert first["request_id"] == "r-same"
    assert second == first  # the same trip, answering the same request
    assert await trip_count() == 1
    for driver_socket in (native.driver, native.other):
        assert await driver_socket.receive() == message("trip.offered", first["data"])
    assert await rider_tablet.receive() == message("trip.requested", first["data"])
    assert await quiet(*native.everyone, rider_tablet)


async def test_a_request_repeated_after_the_trip_moved_on_makes_no_new_trip(native, trip_count):
    trip = await accept_trip(native, await request_trip(native, "r-once"))

    await native.rider.send(message("trip.request", ADDRESSES, "r-once"))

    again = await native.rider.receive()
    assert again == message("trip.requested", {"trip": trip}, "r-once")
    assert await trip_count() == 1
    assert await quiet(*native.everyone)


# --- Refusals ------------------------------------------------------------------------------


@pytest.fixture
def assert_refused(trips_now):
    """Send `request`; its answer must be `expected`, written to the sender only, with
    every trip row as it was; afterwards the socket still works."""

    async def check(socket, request, expected: dict, *, bystanders=()) -> None:
        before = await trips_now()
        await send_raw(socket, request)
        assert await socket.receive() == expected
        assert await trips_now() == before
        assert await quiet(*bystanders)
        await still_usable(socket)

    return check


class TestMalformedMessages:
    @pytest.mark.parametrize(
        ("frame", "text", "fields"),
        [
            ("{not json", "The message is not valid JSON.", None),
            ("", "The message is not valid JSON.", None),
            # Not JSON, though Python's own reader takes them.
            ('{"type": "ping", "data": NaN}', "The message is not valid JSON.", None),
            ('{"type": "ping", "data": 1e999}', "The message is not valid JSON.", None),
            ('{"type": "ping", "data": "\\ud800"}', "The message is not valid JSON.", None),
            ('[{"type": "ping"}]', "The message must be a JSON object.", None),
            ('"ping"', "The message must be a JSON object.", None),
            ('{"data": {}}', "The message needs a string `type`.", {"type": ["Required."]}),
            ('{"type": 7}', "The message needs a string `type`.", {"type": ["Required."]}),
        ],
    )
    async def test_unreadable_frames(self, native, assert_refused, frame, text, fields):
        extra = {"fields": fields} if fields else {}
        await assert_refused(
            native.rider,
            frame,
            refusal("invalid", text, **extra),
            bystanders=native.everyone,
        )

    @pytest.mark.parametrize("kind", ["trip.teleport", "echo.message", "create.trip"])
    async def test_unknown_type(self, native, assert_refused, kind):
        await assert_refused(
            native.rider,
            message(kind, {"data": 1}, "r-9"),
            refusal("unknown_type", f"Unknown message type {kind!r}.", kind, "r-9"),
            bystanders=native.everyone,
        )

    @pytest.mark.parametrize("request_id", [17, ["r"], {"id": "r"}, "", "r" * 65])
    async def test_a_bad_request_id(self, native, trips_now, request_id):
        await native.rider.send(
            {"type": "trip.request", "request_id": request_id, "data": ADDRESSES}
        )

        reply = await native.rider.receive()
        assert reply["type"] == "error"
        assert "request_id" not in reply  # it cannot name what is no valid request_id
        assert reply["error"]["code"] == "invalid"
        assert reply["error"]["message"] == "`request_id` must be a string of 1 to 64 characters."
        assert reply["error"]["fields"] == {"request_id": ["A string of 1 to 64 characters."]}
        assert await trips_now() == []
        assert await quiet(*native.everyone)
        await still_usable(native.rider)

    async def test_a_request_id_of_64_characters_is_fine(self, native):
        await native.rider.send(message("ping", "hi", "r" * 64))

        assert await native.rider.receive() == message("pong", "hi", "r" * 64)

    async def test_a_bad_request_id_still_names_the_request_type(self, native):
        await native.rider.send({"type": "trip.request", "request_id": 17, "data": ADDRESSES})

        reply = await native.rider.receive()
        assert reply["error"]["request_type"] == "trip.request"


class TestInvalidTripRequests:
    @pytest.mark.parametrize(
        ("data", "fields"),
        [
            (
                {},
                {
                    "pick_up_address": ["This field is required."],
                    "drop_off_address": ["This field is required."],
                },
            ),
            (
                {"pick_up_address": "1 Main Street"},
                {"drop_off_address": ["This field is required."]},
            ),
            (
                ADDRESSES | {"pick_up_lat": 52.37},
                {"pick_up_lng": ["Give both lat and lng, or neither."]},
            ),
            (
                ADDRESSES | {"drop_off_lng": 4.89},
                {"drop_off_lat": ["Give both lat and lng, or neither."]},
            ),
            (
                ADDRESSES | {"pick_up_lat": 91, "pick_up_lng": 4.89},
                {"pick_up_lat": ["Ensure this value is less than or equal to 90."]},
            ),
            (
                ADDRESSES | {"pick_up_lat": 52.37, "pick_up_lng": -181},
                {"pick_up_lng": ["Ensure this value is greater than or equal to -180."]},
            ),
            (
                ADDRESSES | {"pick_up_address": "x" * 256},
                {"pick_up_address": ["Ensure this field has no more than 255 characters."]},
            ),
        ],
    )
    async def test_invalid_fields(self, native, assert_refused, data, fields):
        await assert_refused(
            native.rider,
            message("trip.request", data, "r-bad"),
            refusal("invalid", "Some fields are invalid.", "trip.request", "r-bad", fields=fields),
            bystanders=native.everyone,
        )

    @pytest.mark.parametrize("data", [None, "1 Main Street", [ADDRESSES]])
    async def test_data_that_is_not_an_object(self, native, assert_refused, data):
        await assert_refused(
            native.rider,
            {"type": "trip.request", "data": data, "request_id": "r-bad"},
            refusal(
                "invalid",
                "`data` must be an object.",
                "trip.request",
                "r-bad",
                fields={"data": ["Must be an object."]},
            ),
            bystanders=native.everyone,
        )

    async def test_a_second_active_trip(self, native, assert_refused):
        trip = await request_trip(native)

        await assert_refused(
            native.rider,
            message("trip.request", ADDRESSES, "r-second"),
            refusal(
                "rider_has_active_trip",
                "You already have an active trip.",
                "trip.request",
                "r-second",
                trip=trip,
            ),
            bystanders=native.everyone,
        )


class TestWrongRole:
    async def test_a_driver_cannot_request(self, native, assert_refused):
        await assert_refused(
            native.driver,
            message("trip.request", ADDRESSES, "r-3"),
            refusal("wrong_role", "Only riders can request trips.", "trip.request", "r-3"),
            bystanders=native.everyone,
        )

    async def test_a_rider_cannot_accept(self, native, trips_now):
        trip = await request_trip(native)
        before = await trips_now()

        await native.rider.send(message("trip.accept", {"trip_id": trip["id"]}, "r-4"))

        reply = await native.rider.receive()
        assert reply["type"] == "error"
        assert reply["request_id"] == "r-4"
        assert reply["error"]["code"] == "wrong_role"
        assert reply["error"]["request_type"] == "trip.accept"
        assert reply["error"]["trip"] == trip  # their own trip, which they may see
        assert await trips_now() == before
        assert await quiet(*native.everyone)
        await still_usable(native.rider)

    async def test_a_rider_cannot_go_online(self, native, assert_refused):
        await assert_refused(
            native.rider,
            message("driver.online", request_id="r-5"),
            refusal("wrong_role", "Only drivers can go online.", "driver.online", "r-5"),
            bystanders=native.everyone,
        )

    async def test_a_rider_cannot_go_offline(self, native):
        await native.rider.send(message("driver.offline", request_id="r-6"))

        reply = await native.rider.receive()
        assert reply["type"] == "error"
        assert reply["error"]["code"] == "wrong_role"

    async def test_a_rider_cannot_advance(self, native, assert_refused):
        trip = await request_trip(native)

        await assert_refused(
            native.rider,
            message("trip.advance", {"trip_id": trip["id"], "status": "IN_PROGRESS"}, "r-7"),
            refusal(
                "wrong_role", "Only drivers can move a trip on.", "trip.advance", "r-7", trip=trip
            ),
            bystanders=native.everyone,
        )


class TestAccept:
    @pytest.mark.parametrize(
        ("data", "fields"),
        [
            ({}, {"trip_id": ["This field is required."]}),
            ({"trip_id": "not-a-uuid"}, {"trip_id": ["Must be a valid UUID."]}),
            ({"trip_id": ["not", "a", "uuid"]}, {"trip_id": ["Must be a valid UUID."]}),
        ],
    )
    async def test_a_malformed_trip_id(self, native, assert_refused, data, fields):
        await request_trip(native)

        await assert_refused(
            native.driver,
            message("trip.accept", data, "r-8"),
            refusal("invalid", "Some fields are invalid.", "trip.accept", "r-8", fields=fields),
            bystanders=native.everyone,
        )

    async def test_a_trip_that_does_not_exist(self, native, assert_refused):
        await request_trip(native)

        await assert_refused(
            native.driver,
            message("trip.accept", {"trip_id": str(uuid.uuid4())}, "r-9"),
            refusal("trip_not_found", "No such trip.", "trip.accept", "r-9"),
            bystanders=native.everyone,
        )

    async def test_a_taken_trip(self, native, assert_refused):
        trip = await accept_trip(native, await request_trip(native))

        await assert_refused(
            native.other,
            message("trip.accept", {"trip_id": trip["id"]}, "r-10"),
            refusal(
                "trip_not_available",
                "Another driver has already accepted this trip.",
                "trip.accept",
                "r-10",
                trip=trip,
            ),
            bystanders=native.everyone,
        )

    async def test_a_canceled_trip(self, native, assert_refused):
        trip = await request_trip(native)
        await native.rider.send(message("trip.cancel", {"trip_id": trip["id"]}))
        canceled = (await native.rider.receive())["data"]["trip"]
        for driver_socket in (native.driver, native.other):
            await driver_socket.receive()

        await assert_refused(
            native.driver,
            message("trip.accept", {"trip_id": trip["id"]}, "r-11"),
            refusal(
                "trip_not_available",
                "This trip is no longer requested.",
                "trip.accept",
                "r-11",
                trip=canceled,
            ),
            bystanders=native.everyone,
        )

    async def test_a_busy_driver(self, native, new_user, open_socket, assert_refused):
        await accept_trip(native, await request_trip(native))
        next_rider = await open_socket(await new_user("rider"), native=True)
        await next_rider.send(message("trip.request", ADDRESSES))
        next_trip = (await next_rider.receive())["data"]["trip"]
        await native.other.receive()  # offered

        await assert_refused(
            native.driver,
            message("trip.accept", {"trip_id": next_trip["id"]}, "r-12"),
            refusal(
                "driver_busy",
                "You are already on a trip.",
                "trip.accept",
                "r-12",
                trip=next_trip,
            ),
            bystanders=(*native.everyone, next_rider),
        )


class TestAdvanceAndCancel:
    async def test_a_step_out_of_order(self, native, assert_refused):
        trip = await accept_trip(native, await request_trip(native))

        await assert_refused(
            native.driver,
            message("trip.advance", {"trip_id": trip["id"], "status": "COMPLETED"}, "r-13"),
            refusal(
                "status_out_of_order",
                "A STARTED trip cannot become COMPLETED.",
                "trip.advance",
                "r-13",
                trip=trip,
            ),
            bystanders=native.everyone,
        )

    @pytest.mark.parametrize("status", ["STARTED", "CANCELED", "REQUESTED", "FLYING"])
    async def test_a_status_a_driver_cannot_set(self, native, assert_refused, status):
        trip = await accept_trip(native, await request_trip(native))

        await assert_refused(
            native.driver,
            message("trip.advance", {"trip_id": trip["id"], "status": status}, "r-14"),
            refusal(
                "invalid",
                "Some fields are invalid.",
                "trip.advance",
                "r-14",
                fields={"status": [f'"{status}" is not a valid choice.']},
            ),
            bystanders=native.everyone,
        )

    async def test_advancing_another_drivers_trip(self, native, assert_refused):
        trip = await accept_trip(native, await request_trip(native))

        await assert_refused(
            native.other,
            message("trip.advance", {"trip_id": trip["id"], "status": "IN_PROGRESS"}, "r-15"),
            refusal("trip_not_found", "No such trip.", "trip.advance", "r-15"),
            bystanders=native.everyone,
        )

    async def test_advancing_a_request_nobody_accepted(self, native, assert_refused):
        trip = await request_trip(native)

        await assert_refused(
            native.driver,
            message("trip.advance", {"trip_id": trip["id"], "status": "IN_PROGRESS"}, "r-16"),
            refusal(
                "not_your_trip",
                "Only the trip's driver can do that.",
                "trip.advance",
                "r-16",
                trip=trip,
            ),
            bystanders=native.everyone,
        )

    async def test_canceling_another_riders_trip(self, native, assert_refused):
        trip = await request_trip(native)

        await assert_refused(
            native.stranger,
            message("trip.cancel", {"trip_id": trip["id"]}, "r-17"),
            refusal("trip_not_found", "No such trip.", "trip.cancel", "r-17"),
            bystanders=native.everyone,
        )

    async def test_a_driver_cannot_cancel_a_request_they_did_not_take(self, native, assert_refused):
        trip = await request_trip(native)

        await assert_refused(
            native.driver,
            message("trip.cancel", {"trip_id": trip["id"]}, "r-18"),
            refusal(
                "not_your_trip",
                "Only the trip's rider or driver can cancel it.",
                "trip.cancel",
                "r-18",
                trip=trip,
            ),
            bystanders=native.everyone,
        )

    async def test_the_driver_cannot_drop_out_after_pick_up(self, native, assert_refused):
        trip = await accept_trip(native, await request_trip(native))
        trip = await advance_trip(native, trip, "IN_PROGRESS")

        await assert_refused(
            native.driver,
            message("trip.cancel", {"trip_id": trip["id"]}, "r-19"),
            refusal(
                "status_out_of_order",
                "A driver cannot cancel a IN_PROGRESS trip.",
                "trip.cancel",
                "r-19",
                trip=trip,
            ),
            bystanders=native.everyone,
        )

    async def test_the_rider_cannot_cancel_after_pick_up(self, native, assert_refused):
        trip = await accept_trip(native, await request_trip(native))
        trip = await advance_trip(native, trip, "IN_PROGRESS")

        await assert_refused(
            native.rider,
            message("trip.cancel", {"trip_id": trip["id"]}, "r-20"),
            refusal(
                "status_out_of_order",
                "A IN_PROGRESS trip can no longer be canceled.",
                "trip.cancel",
                "r-20",
                trip=trip,
            ),
            bystanders=native.everyone,
        )


class TestDriverApproval:
    async def test_an_unapproved_driver_cannot_go_online(
        self, open_socket, new_user, settings, assert_refused, rider
    ):
        settings.DRIVER_APPROVAL_REQUIRED = True
        rider_socket = await open_socket(rider, native=True)
        driver_socket = await open_socket(await new_user("driver"), native=True)

        await assert_refused(
            driver_socket,
            message("driver.online", request_id="r-21"),
            refusal(
                "driver_not_approved",
                "Your account has not been approved for driving yet.",
                "driver.online",
                "r-21",
            ),
            bystanders=(rider_socket,),
        )
        # Still not open for requests.
        await rider_socket.send(message("trip.request", ADDRESSES))
        assert (await rider_socket.receive())["type"] == "trip.requested"
        assert await quiet(driver_socket)

    async def test_an_approved_driver_can(self, open_socket, new_user, settings, rider):
        settings.DRIVER_APPROVAL_REQUIRED = True
        approved = await new_user("driver", driver_approved_at=timezone.now())
        rider_socket = await open_socket(rider, native=True)
        driver_socket = await go_online(await open_socket(approved, native=True), "r-22")

        await rider_socket.send(message("trip.request", ADDRESSES))

        trip = (await rider_socket.receive())["data"]["trip"]
        assert await driver_socket.receive() == message("trip.offered", {"trip": trip})

    async def test_a_driver_approved_since_connecting_can_accept(
        self, open_socket, new_user, settings, rider
    ):
        settings.DRIVER_APPROVAL_REQUIRED = True
        driver = await new_user("driver")
        rider_socket = await open_socket(rider, native=True)
        driver_socket = await open_socket(driver, native=True)
        await rider_socket.send(message("trip.request", ADDRESSES))
        trip = (await rider_socket.receive())["data"]["trip"]
        await sync_to_async(type(driver).objects.filter(id=driver.id).update)(
            driver_approved_at=timezone.now()
        )

        await driver_socket.send(message("trip.accept", {"trip_id": trip["id"]}, "r-23"))

        accepted = await driver_socket.receive()
        assert (accepted["type"], accepted["request_id"]) == ("trip.accepted", "r-23")
        assert accepted["data"]["trip"]["driver"]["id"] == driver.id

    async def test_a_driver_whose_approval_is_withdrawn_since_connecting_cannot_accept(
        self, open_socket, new_user, settings, rider, assert_refused
    ):
        settings.DRIVER_APPROVAL_REQUIRED = True
        driver = await new_user("driver", driver_approved_at=timezone.now())
        rider_socket = await open_socket(rider, native=True)
        driver_socket = await open_socket(driver, native=True)
        await rider_socket.send(message("trip.request", ADDRESSES))
        trip = (await rider_socket.receive())["data"]["trip"]
        await sync_to_async(type(driver).objects.filter(id=driver.id).update)(
            driver_approved_at=None
        )

        await assert_refused(
            driver_socket,
            message("trip.accept", {"trip_id": trip["id"]}, "r-24"),
            refusal(
                "driver_not_approved",
                "Your account has not been approved for driving yet.",
                "trip.accept",
                "r-24",
                trip=trip,
            ),
            bystanders=(rider_socket,),
        )


# --- Robustness ----------------------------------------------------------------------------


async def test_a_binary_frame_is_refused_and_the_socket_stays_open(native, assert_refused):
    await assert_refused(
        native.rider,
        b'{"type": "ping"}',
        refusal("invalid", "Send JSON in text frames."),
        bystanders=native.everyone,
    )


async def test_a_frame_of_the_largest_size_is_read(open_socket, rider, settings):
    socket = await open_socket(rider, native=True)
    frame = json.dumps(message("ping", ""))
    padding = settings.WEBSOCKET_MAX_MESSAGE_BYTES - len(frame.encode())
    frame = json.dumps(message("ping", "x" * padding))
    assert len(frame.encode()) == settings.WEBSOCKET_MAX_MESSAGE_BYTES

    await socket.communicator.send_to(text_data=frame)

    assert (await socket.receive())["type"] == "pong"


@pytest.mark.parametrize("character", ["x", "é"])
async def test_a_frame_too_large_closes_the_socket(
    open_socket, rider, driver, settings, trip_count, character
):
    socket = await open_socket(rider, native=True)
    driver_socket = await go_online(await open_socket(driver, native=True))
    limit = settings.WEBSOCKET_MAX_MESSAGE_BYTES
    address = character * (limit // len(character.encode()))
    frame = json.dumps(
        message("trip.request", {**ADDRESSES, "pick_up_address": address}, "r"),
        ensure_ascii=False,
    )
    assert len(frame.encode()) > limit
    if character == "é":
        assert len(frame) <= limit  # bytes count, not characters

    await send_raw(socket, frame)

    assert await socket.closed_with() == 1009
    assert await trip_count() == 0
    assert await quiet(driver_socket)


async def test_a_binary_frame_too_large_closes_the_socket(open_socket, rider, settings):
    socket = await open_socket(rider, native=True)

    await socket.communicator.send_to(bytes_data=b"x" * (settings.WEBSOCKET_MAX_MESSAGE_BYTES + 1))

    assert await socket.closed_with() == 1009


async def test_a_burst_beyond_the_limit_is_refused(
    open_socket, rider, driver, settings, trip_count
):
    settings.WEBSOCKET_MESSAGE_BURST = 3
    settings.WEBSOCKET_MESSAGES_PER_SECOND = 0.001  # no refill while the test runs
    socket = await open_socket(rider, native=True)
    driver_socket = await go_online(await open_socket(driver, native=True))

    for number in range(3):
        await socket.send(message("ping", number, f"p-{number}"))
    await socket.send(message("trip.request", ADDRESSES, "r-excess"))
    await socket.send(message("ping", 3, "p-3"))

    for number in range(3):
        assert await socket.receive() == message("pong", number, f"p-{number}")
    for _ in range(2):
        reply = await socket.receive()
        assert reply["type"] == "error"
        assert reply["error"]["code"] == "rate_limited"
        assert reply["error"]["message"] == "Too many messages; slow down."
    assert await trip_count() == 0
    assert await quiet(socket, driver_socket)


async def test_binary_frames_count_towards_the_rate_limit(open_socket, rider, settings):
    settings.WEBSOCKET_MESSAGE_BURST = 2
    settings.WEBSOCKET_MESSAGES_PER_SECOND = 0.001
    socket = await open_socket(rider, native=True)

    for _ in range(3):
        await socket.communicator.send_to(bytes_data=b"{}")

    codes = [(await socket.receive())["error"]["code"] for _ in range(3)]
    assert codes == ["invalid", "invalid", "rate_limited"]


# --- The two dialects side by side -----------------------------------------------------------


async def test_course_and_native_clients_each_hear_only_their_own_dialect(
    open_socket, rider, driver, new_user
):
    """A native rider and driver and a course rider and driver share two whole trips;
    the course clients only ever read `echo.message` with a trip, the native clients
    never read `echo.message`."""
    native_rider = await open_socket(rider, native=True)
    native_driver = await go_online(await open_socket(driver, native=True))
    course_rider = await open_socket(await new_user("rider"))
    course_driver = await open_socket(await new_user("driver"))
    heard: dict[str, list[dict]] = {"native": [], "course": []}

    async def hear(socket, dialect: str) -> dict:
        received = await socket.receive()
        heard[dialect].append(received)
        return received

    # A native rider's trip, taken by the course driver.
    await native_rider.send(message("trip.request", ADDRESSES, "n-1"))
    trip = (await hear(native_rider, "native"))["data"]["trip"]
    assert (await hear(native_driver, "native"))["type"] == "trip.offered"
    assert (await hear(course_driver, "course"))["data"] == trip
    await course_driver.send(course_update(trip, "STARTED"))
    accepted = (await hear(course_driver, "course"))["data"]
    assert (await hear(native_rider, "native")) == message("trip.accepted", {"trip": accepted})
    assert (await hear(native_driver, "native")) == message("trip.taken", {"trip_id": trip["id"]})
    for status in ("IN_PROGRESS", "COMPLETED"):
        await course_driver.send(course_update(accepted, status))
        assert (await hear(course_driver, "course"))["data"]["status"] == status
        assert (await hear(native_rider, "native"))["type"] == "trip.updated"

    # A course rider's trip, taken by the native driver.
    await course_rider.send(course_trip_request(course_rider.user))
    trip = (await hear(course_rider, "course"))["data"]
    assert (await hear(native_driver, "native")) == message("trip.offered", {"trip": trip})
    assert (await hear(course_driver, "course"))["data"] == trip
    await native_driver.send(message("trip.accept", {"trip_id": trip["id"]}, "n-2"))
    assert (await hear(native_driver, "native"))["type"] == "trip.accepted"
    assert (await hear(course_rider, "course"))["data"]["status"] == "STARTED"
    assert (await hear(course_driver, "course"))["data"]["status"] == "STARTED"
    await native_driver.send(message("driver.offline"))
    assert (await hear(native_driver, "native"))["type"] == "driver.status"
    await native_driver.send(message("trip.cancel", {"trip_id": trip["id"]}, "n-3"))
    assert (await hear(native_driver, "native"))["data"]["trip"]["status"] == "REQUESTED"
    assert (await hear(course_rider, "course"))["data"]["status"] == "REQUESTED"
    assert (await hear(course_driver, "course"))["data"]["status"] == "REQUESTED"
    await native_rider.send(message("ping", "x"))
    assert (await hear(native_rider, "native"))["type"] == "pong"

    assert await quiet(native_rider, native_driver, course_rider, course_driver)
    assert heard["native"] and heard["course"]
    for received in heard["course"]:
        assert set(received) == {"type", "data"}
        assert received["type"] == "echo.message"
        assert {"id", "status", "rider", "driver"} <= set(received["data"])
    for received in heard["native"]:
        assert received["type"] in NATIVE_ONLY


# --- Staying in sync -------------------------------------------------------------------------


def apply_event(state: dict[str, dict], received: dict) -> None:
    """What a native client does with an event: the trip it carries replaces its own copy,
    and leaves the active trips once it is over."""
    assert received["type"] in TRIP_EVENTS, received
    trip = received["data"]["trip"]
    if trip["status"] in FINAL_STATUSES:
        state.pop(trip["id"], None)
    else:
        state[trip["id"]] = trip


async def test_a_rider_following_events_ends_where_rest_is(native, open_socket, client_for):
    """Zulip's check: the snapshot plus every event, applied in order, give at each step
    what a fresh fetch from the REST API gives."""
    api = await sync_to_async(client_for)(native.rider.user)
    state = {trip["id"]: trip for trip in native.rider.snapshot["trips"]}
    last: dict = {}

    async def rest_active() -> dict[str, dict]:
        found = {}
        for status in ("REQUESTED", "STARTED", "IN_PROGRESS"):
            response = await sync_to_async(api.get)("/api/trip/", {"status": status})
            assert response.status_code == 200
            found |= {trip["id"]: trip for trip in response.json()}
        return found

    async def follow(*expected_types: str) -> None:
        for expected in expected_types:
            received = await native.rider.receive()
            assert received["type"] == expected
            apply_event(state, received)
            last.clear()
            last.update(received["data"]["trip"])
        assert await native.rider.receive_nothing()
        assert state == await rest_active()
        response = await sync_to_async(api.get)(f"/api/trip/{last['id']}/")
        assert response.json() == last

    async def drain(*sockets) -> None:
        for socket in sockets:
            await socket.receive()

    async def send(socket, kind: str, trip_id: str, **data) -> None:
        await socket.send(message(kind, {"trip_id": trip_id, **data}))
        assert (await socket.receive())["type"] != "error"

    await native.rider.send(message("trip.request", ADDRESSES, "sync-1"))
    await follow("trip.requested")
    trip_id = last["id"]
    await drain(native.driver, native.other)

    await send(native.driver, "trip.accept", trip_id)
    await drain(native.other)
    await follow("trip.accepted")

    await send(native.driver, "trip.cancel", trip_id)  # drops out: offered again
    await drain(native.other)
    await follow("trip.updated")
    assert state[trip_id]["status"] == "REQUESTED"

    await send(native.other, "trip.accept", trip_id)
    await drain(native.driver)  # trip.taken: they are open for requests again
    await follow("trip.accepted")
    # A socket opening now starts where the old one has got to.
    rider_tablet = await open_socket(native.rider.user, native=True)
    assert {trip["id"]: trip for trip in rider_tablet.snapshot["trips"]} == state

    await send(native.other, "trip.advance", trip_id, status="IN_PROGRESS")
    await follow("trip.updated")
    await send(native.other, "trip.advance", trip_id, status="COMPLETED")
    await follow("trip.updated")
    assert state == {}
    assert last["status"] == "COMPLETED"

    # A second trip, which the rider cancels.
    await native.rider.send(message("trip.request", ADDRESSES, "sync-2"))
    await follow("trip.requested")
    await drain(native.driver, native.other)
    await native.rider.send(message("trip.cancel", {"trip_id": last["id"]}))
    await follow("trip.canceled")
    await drain(native.driver, native.other)
    assert state == {}
    assert last["status"] == "CANCELED"


# --- Races -----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_drivers_accepting_at_once(native, trip_in_db):
    trip = await request_trip(native)
    request_ids = {native.driver.user.id: "race-1", native.other.user.id: "race-2"}

    await asyncio.gather(
        *(
            socket.send(
                message("trip.accept", {"trip_id": trip["id"]}, request_ids[socket.user.id])
            )
            for socket in (native.driver, native.other)
        )
    )

    # The winner hears its acceptance; the loser its refusal and that the trip is taken,
    # in either order.
    heard: dict[str, tuple[int, dict]] = {}
    for socket in (native.driver, native.other):
        first = await socket.receive()
        received = [first] if first["type"] == "trip.accepted" else [first, await socket.receive()]
        for each in received:
            assert each["type"] not in heard, each
            heard[each["type"]] = (socket.user.id, each)
    assert sorted(heard) == ["error", "trip.accepted", "trip.taken"]
    winner, accepted = heard["trip.accepted"]
    loser, error = heard["error"]
    assert winner != loser
    assert accepted["request_id"] == request_ids[winner]
    assert accepted["data"]["trip"]["driver"]["id"] == winner
    assert error == refusal(
        "trip_not_available",
        "Another driver has already accepted this trip.",
        "trip.accept",
        request_ids[loser],
        trip=accepted["data"]["trip"],
    )
    assert heard["trip.taken"] == (loser, message("trip.taken", {"trip_id": trip["id"]}))
    assert await native.rider.receive() == message("trip.accepted", accepted["data"])
    assert await quiet(*native.everyone)
    assert (await trip_in_db(trip["id"])).driver_id == winner
