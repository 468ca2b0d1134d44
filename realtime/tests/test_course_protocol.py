"""The course's clients, unchanged, against taxi: the same messages, made safe."""

import pytest

from realtime.tests.conftest import course_trip_request, course_update

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def course(open_socket, rider, driver, make_user):
    """A rider, the driver who will take the trip, and another available driver."""
    from asgiref.sync import sync_to_async

    other_driver = await sync_to_async(make_user)("driver")
    return (
        await open_socket(rider),
        await open_socket(driver),
        await open_socket(other_driver),
    )


async def request_trip(rider_socket, *drivers) -> dict:
    await rider_socket.send(course_trip_request(rider_socket.user))
    echoed = await rider_socket.receive()
    for driver_socket in drivers:
        assert await driver_socket.receive() == echoed
    return echoed["data"]


async def test_a_whole_trip(course, trip_in_db):
    rider_socket, driver_socket, other_socket = course

    trip = await request_trip(rider_socket, driver_socket, other_socket)
    assert trip["status"] == "REQUESTED"
    assert trip["rider"]["id"] == rider_socket.user.id
    assert trip["driver"] is None

    await driver_socket.send(course_update(trip, "STARTED", driver=driver_socket.user.id))
    accepted = await rider_socket.receive()
    assert accepted["type"] == "echo.message"
    assert accepted["data"]["status"] == "STARTED"
    assert accepted["data"]["driver"]["id"] == driver_socket.user.id
    assert await driver_socket.receive() == accepted
    # The other driver hears that the trip is gone: it has a driver now.
    assert await other_socket.receive() == accepted

    for status in ("IN_PROGRESS", "COMPLETED"):
        await driver_socket.send(course_update(accepted["data"], status))
        update = await rider_socket.receive()
        assert update["data"]["status"] == status
        assert await driver_socket.receive() == update
    assert await other_socket.receive_nothing()

    row = await trip_in_db(trip["id"])
    assert row.status == "COMPLETED"
    assert row.driver_id == driver_socket.user.id
    assert row.accepted_at and row.picked_up_at and row.completed_at


async def test_rider_cancels_an_open_request(course, trip_in_db):
    rider_socket, driver_socket, other_socket = course
    trip = await request_trip(rider_socket, driver_socket, other_socket)

    await rider_socket.send(course_update(trip, "CANCELED"))

    canceled = await rider_socket.receive()
    assert canceled["data"]["status"] == "CANCELED"
    assert await driver_socket.receive() == canceled
    assert await other_socket.receive() == canceled
    assert (await trip_in_db(trip["id"])).cancel_reason == "rider"


async def test_rider_cancels_after_a_driver_accepted(course):
    rider_socket, driver_socket, other_socket = course
    trip = await request_trip(rider_socket, driver_socket, other_socket)
    await driver_socket.send(course_update(trip, "STARTED"))
    for socket in course:
        await socket.receive()

    await rider_socket.send(course_update(trip, "CANCELED"))

    canceled = await rider_socket.receive()
    assert canceled["data"]["status"] == "CANCELED"
    assert await driver_socket.receive() == canceled
    assert await other_socket.receive_nothing()


async def test_driver_drops_out_and_the_trip_is_offered_again(course, trip_in_db):
    rider_socket, driver_socket, other_socket = course
    trip = await request_trip(rider_socket, driver_socket, other_socket)
    await driver_socket.send(course_update(trip, "STARTED"))
    for socket in course:
        await socket.receive()

    await driver_socket.send(course_update(trip, "CANCELED"))

    reopened = await rider_socket.receive()
    assert reopened["data"]["status"] == "REQUESTED"
    assert reopened["data"]["driver"] is None
    assert await driver_socket.receive() == reopened
    assert await other_socket.receive() == reopened  # offered again
    assert await driver_socket.receive_nothing()  # not offered to the driver who left it
    row = await trip_in_db(trip["id"])
    assert row.status == "REQUESTED" and row.driver_id is None


async def test_losing_a_race_shows_who_has_the_trip(course, trip_in_db):
    rider_socket, driver_socket, other_socket = course
    trip = await request_trip(rider_socket, driver_socket, other_socket)
    await driver_socket.send(course_update(trip, "STARTED"))
    taken = await other_socket.receive()

    await other_socket.send(course_update(trip, "STARTED"))

    refusal = await other_socket.receive()
    assert refusal["type"] == "echo.message"
    assert refusal["error"]["code"] == "trip_not_available"
    assert refusal["data"]["driver"]["id"] == driver_socket.user.id
    assert refusal["data"] == taken["data"]
    assert (await trip_in_db(trip["id"])).driver_id == driver_socket.user.id
    await rider_socket.receive()  # the winner's accept
    assert await rider_socket.receive_nothing()


async def test_a_reconnecting_rider_receives_later_updates(open_socket, rider, driver):
    rider_socket = await open_socket(rider)
    driver_socket = await open_socket(driver)
    trip = await request_trip(rider_socket, driver_socket)
    await rider_socket.communicator.disconnect()

    rider_again = await open_socket(rider)
    await driver_socket.send(course_update(trip, "STARTED"))

    update = await rider_again.receive()
    assert update["data"]["status"] == "STARTED"


async def test_every_device_of_a_user_hears_the_trip(open_socket, rider, driver):
    phone = await open_socket(rider)
    tablet = await open_socket(rider)

    await phone.send(course_trip_request(rider))

    echoed = await phone.receive()
    assert await tablet.receive() == echoed


async def test_a_busy_driver_is_not_offered_requests(open_socket, rider, driver, make_user):
    from asgiref.sync import sync_to_async

    rider_socket = await open_socket(rider)
    driver_socket = await open_socket(driver)
    trip = await request_trip(rider_socket, driver_socket)
    await driver_socket.send(course_update(trip, "STARTED"))
    await driver_socket.receive()
    another_rider = await open_socket(await sync_to_async(make_user)("rider"))

    await another_rider.send(course_trip_request(another_rider.user))

    await another_rider.receive()
    assert await driver_socket.receive_nothing()


class TestRefusals:
    """Each refusal: an answer to the sender only, nothing changed, nobody else told."""

    async def test_requesting_for_someone_else(self, course, make_user, trip_count):
        from asgiref.sync import sync_to_async

        rider_socket, driver_socket, _ = course
        victim = await sync_to_async(make_user)("rider")

        await rider_socket.send(course_trip_request(victim))

        refusal = await rider_socket.receive()
        assert refusal["type"] == "error"
        assert refusal["error"]["code"] == "field_not_allowed"
        assert "rider" in refusal["error"]["fields"]
        assert await trip_count() == 0
        assert await driver_socket.receive_nothing()

    @pytest.mark.parametrize("field", [{"status": "COMPLETED"}, {"driver": 1}])
    async def test_setting_server_fields_on_a_new_trip(self, course, trip_count, field):
        rider_socket, driver_socket, _ = course

        await rider_socket.send(course_trip_request(rider_socket.user, **field))

        refusal = await rider_socket.receive()
        assert refusal["error"]["code"] == "field_not_allowed"
        assert await trip_count() == 0
        assert await driver_socket.receive_nothing()

    async def test_a_driver_cannot_request(self, course, trip_count):
        _, driver_socket, other_socket = course

        await driver_socket.send(course_trip_request())

        refusal = await driver_socket.receive()
        assert refusal == {
            "type": "error",
            "error": {"code": "wrong_role", "message": "Only riders can request trips."},
        }
        assert await trip_count() == 0
        assert await other_socket.receive_nothing()

    async def test_a_second_active_trip(self, course, trip_count):
        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)

        await rider_socket.send(course_trip_request(rider_socket.user))

        refusal = await rider_socket.receive()
        assert refusal["error"]["code"] == "rider_has_active_trip"
        assert refusal["data"]["id"] == trip["id"]
        assert await trip_count() == 1
        assert await driver_socket.receive_nothing()

    async def test_a_rider_cannot_accept(self, course, trip_in_db):
        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)

        await rider_socket.send(course_update(trip, "STARTED", driver=rider_socket.user.id))

        refusal = await rider_socket.receive()
        assert refusal["error"]["code"] in {"wrong_role", "field_not_allowed"}
        assert refusal["data"]["status"] == "REQUESTED"
        assert (await trip_in_db(trip["id"])).status == "REQUESTED"
        assert await driver_socket.receive_nothing()
        assert await other_socket.receive_nothing()

    async def test_naming_another_driver(self, course, trip_in_db):
        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)

        await driver_socket.send(course_update(trip, "STARTED", driver=other_socket.user.id))

        refusal = await driver_socket.receive()
        assert refusal["type"] == "echo.message"
        assert refusal["error"]["code"] == "field_not_allowed"
        assert refusal["data"]["driver"] is None
        assert (await trip_in_db(trip["id"])).status == "REQUESTED"
        assert await rider_socket.receive_nothing()
        assert await other_socket.receive_nothing()

    async def test_changing_the_rider(self, course, trip_in_db, make_user):
        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)

        await driver_socket.send(course_update(trip, "STARTED", rider=other_socket.user.id))

        refusal = await driver_socket.receive()
        assert refusal["error"]["code"] == "field_not_allowed"
        assert (await trip_in_db(trip["id"])).rider_id == rider_socket.user.id
        assert await rider_socket.receive_nothing()

    async def test_steps_out_of_order(self, course, trip_in_db):
        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)
        await driver_socket.send(course_update(trip, "STARTED"))
        for socket in course:
            await socket.receive()

        await driver_socket.send(course_update(trip, "COMPLETED"))

        refusal = await driver_socket.receive()
        assert refusal["error"]["code"] == "status_out_of_order"
        assert refusal["data"]["status"] == "STARTED"
        assert (await trip_in_db(trip["id"])).status == "STARTED"
        assert await rider_socket.receive_nothing()

    async def test_another_drivers_trip(self, course, trip_in_db):
        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)
        await driver_socket.send(course_update(trip, "STARTED"))
        for socket in course:
            await socket.receive()

        await other_socket.send(course_update(trip, "IN_PROGRESS"))

        refusal = await other_socket.receive()
        assert refusal["type"] == "error"
        assert refusal["error"]["code"] == "trip_not_found"
        assert (await trip_in_db(trip["id"])).status == "STARTED"
        assert await rider_socket.receive_nothing()
        assert await driver_socket.receive_nothing()

    async def test_another_riders_trip(self, course, make_user, open_socket, trip_in_db):
        from asgiref.sync import sync_to_async

        rider_socket, driver_socket, other_socket = course
        trip = await request_trip(rider_socket, driver_socket, other_socket)
        intruder = await open_socket(await sync_to_async(make_user)("rider"))

        await intruder.send(course_update(trip, "CANCELED"))

        refusal = await intruder.receive()
        assert refusal["error"]["code"] == "trip_not_found"
        assert "data" not in refusal
        assert (await trip_in_db(trip["id"])).status == "REQUESTED"
        assert await rider_socket.receive_nothing()
        assert await driver_socket.receive_nothing()
