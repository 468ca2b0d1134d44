import asyncio
import contextlib
import json
from datetime import UTC, datetime

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from accounts.services import session_tokens_issue
from config.asgi import application
from realtime.protocols import NATIVE_SUBPROTOCOL


class Socket:
    """A test client's socket: a communicator plus the JSON conveniences tests need."""

    def __init__(self, communicator: WebsocketCommunicator, user, subprotocol):
        self.communicator = communicator
        self.user = user
        self.subprotocol = subprotocol

    async def send(self, message) -> None:
        await self.communicator.send_to(text_data=json.dumps(message))

    async def receive(self, timeout: float = 2) -> dict:
        return await self.communicator.receive_json_from(timeout=timeout)

    async def receive_nothing(self, timeout: float = 0.2) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def closed_with(self, timeout: float = 2):
        output = await self.communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code")


@pytest.fixture(autouse=True)
def trail_head_start(monkeypatch):
    """Sockets start their trail with no head start, so that a test knows which
    position completes a batch; a test of the head start sets its own."""
    head_start = {"points": 0}
    monkeypatch.setattr("realtime.consumers.trail_head_start", lambda: head_start["points"])
    return head_start


@pytest.fixture
async def channel_layer():
    layer = get_channel_layer()
    await layer.flush()
    yield layer
    await layer.flush()


@pytest.fixture
async def open_socket(channel_layer):
    """Open an authenticated socket; every socket is closed when the test ends."""
    opened: list[WebsocketCommunicator] = []

    async def open_(
        user=None,
        *,
        native: bool = False,
        query: str | None = None,
        headers: list | None = None,
        expect_snapshot: bool = True,
    ) -> Socket:
        if query is None:
            tokens = await sync_to_async(session_tokens_issue)(user=user)
            query = f"token={tokens['access']}"
        communicator = WebsocketCommunicator(
            application,
            f"/taxi/?{query}",
            headers=headers or [],
            subprotocols=[NATIVE_SUBPROTOCOL] if native else None,
        )
        connected, subprotocol = await communicator.connect(timeout=3)
        if not connected:
            raise ConnectionRefusedError(subprotocol)
        opened.append(communicator)
        socket = Socket(communicator, user, subprotocol)
        if native and expect_snapshot:
            snapshot = await socket.receive()
            assert snapshot["type"] == "snapshot"
            socket.snapshot = snapshot["data"]
        return socket

    yield open_
    for communicator in opened:
        # A socket whose application already failed has nothing left to close; its
        # failure is the test's, and must not also fail the next test's set-up.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await communicator.disconnect()


@pytest.fixture
async def refused(channel_layer):
    """Whether a handshake with these arguments is refused."""

    async def refused_(path: str, *, headers=None, subprotocols=None) -> bool:
        communicator = WebsocketCommunicator(
            application, path, headers=headers or [], subprotocols=subprotocols
        )
        connected, _ = await communicator.connect(timeout=3)
        if connected:
            await communicator.disconnect()
        return not connected

    return refused_


def course_trip_request(rider=None, **overrides) -> dict:
    data = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}
    if rider is not None:
        data["rider"] = rider.id
    data.update(overrides)
    return {"type": "create.trip", "data": data}


def course_update(trip: dict, status: str, **overrides) -> dict:
    """What the course's clients send: the whole trip back, with a new status."""
    data = {
        "id": trip["id"],
        "pick_up_address": trip["pick_up_address"],
        "drop_off_address": trip["drop_off_address"],
        "status": status,
        "rider": trip["rider"]["id"],
        "driver": (trip["driver"] or {}).get("id"),
    }
    data.update(overrides)
    return {"type": "update.trip", "data": data}


@pytest.fixture
def trip_in_db():
    """The trip's row as it is now, read off the event loop."""
    from trips.models import Trip

    async def read(trip_id):
        return await sync_to_async(
            lambda: Trip.objects.select_related("rider", "driver").filter(id=trip_id).first()
        )()

    return read


@pytest.fixture
def trip_count():
    from trips.models import Trip

    async def count():
        return await sync_to_async(Trip.objects.count)()

    return count


@pytest.fixture
def clock():
    """Time that the test moves on (`clock.shift(seconds)`) instead of sleeping; the
    event loop's own clock is left alone, so awaiting still works."""
    with time_machine.travel(datetime(2026, 11, 24, 8, 0, tzinfo=UTC), tick=True) as traveller:
        yield traveller
