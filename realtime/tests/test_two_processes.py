"""The real server, started as the README starts it, twice: two processes that share only
PostgreSQL and Redis carry a whole trip between a rider on one and a driver on the other,
over real sockets, in both dialects."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from accounts.services import session_tokens_issue
from realtime.protocols import NATIVE_SUBPROTOCOL
from realtime.tests.servers import running_servers

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

RECEIVE_SECONDS = 5
ADDRESSES = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}


@pytest.fixture
def servers(transactional_db, tmp_path_factory):
    """Two server processes on the test database and the test session's Redis prefix,
    stopped before the test's tables are emptied (a server still at work would
    deadlock with the truncation)."""
    with running_servers(["A", "B"], tmp_path_factory.mktemp("servers")) as started:
        yield started


async def access_token(user) -> str:
    return (await sync_to_async(session_tokens_issue)(user=user))["access"]


async def receive(websocket) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), RECEIVE_SECONDS))


async def send(websocket, message: dict) -> None:
    await websocket.send(json.dumps(message))


async def test_a_course_trip_crosses_processes(servers, make_user, trip_in_db):
    process_a, process_b = servers
    rider = await sync_to_async(make_user)("rider")
    driver = await sync_to_async(make_user)("driver")
    rider_url = process_a.url("ws", f"/taxi/?token={await access_token(rider)}")
    driver_url = process_b.url("ws", f"/taxi/?token={await access_token(driver)}")

    async with connect(rider_url) as rider_socket, connect(driver_url) as driver_socket:
        assert rider_socket.subprotocol is None and driver_socket.subprotocol is None

        await send(rider_socket, {"type": "create.trip", "data": ADDRESSES | {"rider": rider.id}})
        requested = await receive(rider_socket)
        assert requested["type"] == "echo.message"
        assert requested["data"]["status"] == "REQUESTED"
        assert await receive(driver_socket) == requested  # offered on the other process
        trip = requested["data"]

        update = {"id": trip["id"], "rider": rider.id, "driver": driver.id} | ADDRESSES
        for status in ("STARTED", "IN_PROGRESS", "COMPLETED"):
            await send(driver_socket, {"type": "update.trip", "data": update | {"status": status}})
            changed = await receive(driver_socket)
            assert changed["type"] == "echo.message"
            assert changed["data"]["status"] == status
            assert changed["data"]["driver"]["id"] == driver.id
            assert await receive(rider_socket) == changed  # heard on the other process

    row = await trip_in_db(trip["id"])
    assert row.status == "COMPLETED" and row.driver_id == driver.id


async def test_a_native_trip_crosses_processes(servers, make_user, trip_in_db):
    process_a, process_b = servers
    rider = await sync_to_async(make_user)("rider")
    driver = await sync_to_async(make_user)("driver")
    rider_token, driver_token = await access_token(rider), await access_token(driver)
    rider_url = process_a.url("ws", f"/taxi/?token={rider_token}")
    driver_url = process_b.url("ws", f"/taxi/?token={driver_token}")
    native = {"subprotocols": [NATIVE_SUBPROTOCOL]}

    async with (
        connect(rider_url, **native) as rider_socket,
        connect(driver_url, **native) as driver_socket,
    ):
        assert rider_socket.subprotocol == driver_socket.subprotocol == NATIVE_SUBPROTOCOL
        for websocket, user in ((rider_socket, rider), (driver_socket, driver)):
            snapshot = await receive(websocket)
            assert snapshot["type"] == "snapshot"
            assert snapshot["data"]["user"]["id"] == user.id
            assert snapshot["data"]["trips"] == []
        await send(driver_socket, {"type": "driver.online", "request_id": "b-1"})
        assert await receive(driver_socket) == {
            "type": "driver.status",
            "data": {"online": True},
            "request_id": "b-1",
        }

        await send(rider_socket, {"type": "trip.request", "request_id": "a-1", "data": ADDRESSES})
        requested = await receive(rider_socket)
        assert requested["type"] == "trip.requested"
        assert requested["request_id"] == "a-1"
        trip = requested["data"]["trip"]
        assert await receive(driver_socket) == {"type": "trip.offered", "data": {"trip": trip}}

        await send(
            driver_socket,
            {"type": "trip.accept", "request_id": "b-2", "data": {"trip_id": trip["id"]}},
        )
        accepted = await receive(driver_socket)
        assert accepted["type"] == "trip.accepted"
        assert accepted["request_id"] == "b-2"
        assert accepted["data"]["trip"]["driver"]["id"] == driver.id
        assert await receive(rider_socket) == {"type": "trip.accepted", "data": accepted["data"]}

        # A second device of the rider, on the driver's process, starts from the snapshot
        # and hears what follows.
        tablet_url = process_b.url("ws", f"/taxi/?token={rider_token}")
        async with connect(tablet_url, **native) as rider_tablet:
            snapshot = await receive(rider_tablet)
            assert snapshot["data"]["trips"] == [accepted["data"]["trip"]]

            for number, status in enumerate(("IN_PROGRESS", "COMPLETED"), start=3):
                await send(
                    driver_socket,
                    {
                        "type": "trip.advance",
                        "request_id": f"b-{number}",
                        "data": {"trip_id": trip["id"], "status": status},
                    },
                )
                updated = await receive(driver_socket)
                assert updated["type"] == "trip.updated"
                assert updated["request_id"] == f"b-{number}"
                assert updated["data"]["trip"]["status"] == status
                heard = {"type": "trip.updated", "data": updated["data"]}
                assert await receive(rider_socket) == heard
                assert await receive(rider_tablet) == heard

    row = await trip_in_db(trip["id"])
    assert row.status == "COMPLETED" and row.driver_id == driver.id
