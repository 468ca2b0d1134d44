"""Who may open /taxi/, and when the server closes a socket."""

import asyncio
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt import authentication as simplejwt_authentication
from rest_framework_simplejwt import tokens as simplejwt_tokens
from rest_framework_simplejwt.tokens import AccessToken
from uvicorn.protocols.utils import ClientDisconnected

from accounts import authentication
from accounts.services import session_tokens_issue
from config import tasks
from config.asgi import application
from conftest import PASSWORD, threads_entered
from realtime.auth import token_user_and_trips
from realtime.consumers import CLOSE_INTERNAL_ERROR, CLOSE_SESSION_ENDED, TripConsumer
from realtime.delivery import user_group
from realtime.limits import sockets_per_user
from realtime.protocols import NATIVE_SUBPROTOCOL

pytestmark = pytest.mark.django_db(transaction=True)


async def tokens_for(user) -> dict:
    return await sync_to_async(session_tokens_issue)(user=user)


async def log_out(api_client, tokens: dict) -> None:
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = await sync_to_async(api_client.post)(
        "/api/log_out/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 204


async def test_course_client_connects_with_its_token(open_socket, rider):
    socket = await open_socket(rider)

    assert socket.subprotocol is None
    await socket.send({"type": "echo.message", "data": {"hello": 1}})
    assert await socket.receive() == {"type": "echo.message", "data": {"hello": 1}}


async def test_native_client_gets_its_subprotocol_and_a_snapshot(open_socket, rider):
    socket = await open_socket(rider, native=True)

    assert socket.subprotocol == NATIVE_SUBPROTOCOL
    assert socket.snapshot["user"]["id"] == rider.id
    assert socket.snapshot["trips"] == []


async def test_anonymous_is_refused(refused):
    assert await refused("/taxi/")


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c"])
async def test_malformed_token_is_refused(refused, token):
    assert await refused(f"/taxi/?token={token}")


async def test_refresh_token_is_not_an_access_token(refused, rider):
    tokens = await tokens_for(rider)

    assert await refused(f"/taxi/?token={tokens['refresh']}")


async def test_expired_token_is_refused(refused, rider):
    token = await sync_to_async(AccessToken.for_user)(rider)
    token.set_exp(lifetime=-timedelta(seconds=1))

    assert await refused(f"/taxi/?token={token}")


async def test_token_of_a_logged_out_session_is_refused(refused, rider, api_client):
    tokens = await tokens_for(rider)
    await log_out(api_client, tokens)

    assert await refused(f"/taxi/?token={tokens['access']}")


async def test_inactive_user_is_refused(refused, make_user):
    user = await sync_to_async(make_user)("rider")
    tokens = await tokens_for(user)
    user.is_active = False
    await sync_to_async(user.save)()

    assert await refused(f"/taxi/?token={tokens['access']}")


async def test_token_of_a_user_deleted_since_is_refused(refused, make_user):
    user = await sync_to_async(make_user)("rider")
    tokens = await tokens_for(user)
    await sync_to_async(user.delete)()

    assert await refused(f"/taxi/?token={tokens['access']}")


async def test_user_without_a_role_is_refused(refused, make_user):
    user = await sync_to_async(make_user)("")
    tokens = await tokens_for(user)

    assert await refused(f"/taxi/?token={tokens['access']}")


class TestATokensHandshake:
    """A token is checked on the event loop; its session and user are confirmed in the
    thread hop that reads the socket's state (docs/benchmarks.md, finding 54)."""

    async def test_goes_to_a_worker_thread_once(self, open_socket, rider, monkeypatch):
        tokens = await sync_to_async(session_tokens_issue)(user=rider)
        hops = threads_entered(monkeypatch)
        socket = await open_socket(native=True, query=f"token={tokens['access']}")

        assert socket.snapshot["user"]["id"] == rider.id
        assert len(hops) == 1

    def test_reads_its_user_and_their_trips_in_one_statement(
        self, rider, driver, make_trip, django_assert_num_queries
    ):
        trip = make_trip(rider, status="STARTED", driver=driver)
        make_trip(rider, status="COMPLETED", driver=driver)
        token = AccessToken(async_to_sync(tokens_for)(driver)["access"])

        with django_assert_num_queries(1):
            user, trips = token_user_and_trips(token)

        assert user == driver
        assert [found.id for found in trips] == [trip.id]

    async def test_reads_no_trips_apart_from_its_user(
        self, open_socket, rider, driver, make_trip, monkeypatch
    ):
        trip = await sync_to_async(make_trip)(rider, status="STARTED", driver=driver)

        def apart(user):
            raise AssertionError("the trips were read in a statement of their own")

        monkeypatch.setattr("realtime.consumers.trips_active_for", apart)
        socket = await open_socket(driver, native=True)

        assert [found["id"] for found in socket.snapshot["trips"]] == [str(trip.id)]

    def test_with_simplejwt_s_own_revocation_its_user_is_read_its_way(
        self, rider, make_trip, monkeypatch
    ):
        # simplejwt then puts a hash of the user's password in the token, and refuses
        # it once the password has changed. Its settings object is read at import (an
        # override of SIMPLE_JWT makes a new one that these modules never see).
        for module in (authentication, simplejwt_authentication, simplejwt_tokens):
            monkeypatch.setattr(module.api_settings, "CHECK_REVOKE_TOKEN", True)
        trip = make_trip(rider)
        token = AccessToken(async_to_sync(tokens_for)(rider)["access"])

        user, trips = token_user_and_trips(token)
        assert user == rider and [found.id for found in trips] == [trip.id]

        rider.set_password("another password of the rider's")
        rider.save()
        assert token_user_and_trips(token) is None

    async def test_refused_once_its_user_is_read_leaves_nothing_held(
        self, open_socket, refused, rider, api_client, settings
    ):
        settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 1
        tokens = await tokens_for(rider)
        await log_out(api_client, tokens)

        assert await refused(f"/taxi/?token={tokens['access']}")
        assert sockets_per_user.open[rider.id] == 0
        await open_socket(rider)  # the one socket the rider may hold is still theirs

    async def test_refused_hears_nothing_its_groups_heard_meanwhile(
        self, rider, api_client, monkeypatch, caplog, settings
    ):
        # The in-memory layer has the event in the socket's channel before the hop
        # ends; over Redis it would arrive at its own pace, maybe after the refusal.
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        channel_layer = get_channel_layer()
        tokens = await tokens_for(rider)
        await log_out(api_client, tokens)

        def heard_while_confirming(token):
            event = {"type": "trip.event", "kind": "trip.updated", "trip": {}}
            async_to_sync(channel_layer.group_send)(user_group(rider.id), event)
            return token_user_and_trips(token)

        monkeypatch.setattr("realtime.consumers.token_user_and_trips", heard_while_confirming)
        communicator = WebsocketCommunicator(application, f"/taxi/?token={tokens['access']}")
        connected, _ = await communicator.connect(timeout=3)
        assert not connected
        # Handled after what the socket's groups heard while it was confirmed.
        await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
        await communicator.wait(timeout=2)

        assert "Failed to handle" not in caplog.text
        assert await communicator.receive_nothing()


class TestOrigins:
    async def test_other_sites_are_refused(self, refused, rider):
        tokens = await tokens_for(rider)

        assert await refused(
            f"/taxi/?token={tokens['access']}",
            headers=[(b"origin", b"https://evil.example"), (b"host", b"taxi.example.com")],
        )

    async def test_other_sites_are_refused_however_the_header_is_spelt(self, refused, rider):
        # ASGI servers lowercase header names; uvicorn's WebSocket protocol, first on a
        # connection, passes the client's spelling. The check must not depend on which.
        tokens = await tokens_for(rider)

        assert await refused(
            f"/taxi/?token={tokens['access']}",
            headers=[(b"Origin", b"https://evil.example"), (b"Host", b"taxi.example.com")],
        )

    async def test_the_null_origin_is_refused(self, refused, rider):
        tokens = await tokens_for(rider)

        assert await refused(f"/taxi/?token={tokens['access']}", headers=[(b"origin", b"null")])

    async def test_same_origin_and_allowed_origins_connect(self, open_socket, rider, settings):
        settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://app.example.com", "localhost"]
        same = [(b"origin", b"https://taxi.example.com"), (b"host", b"taxi.example.com")]
        listed = [(b"origin", b"https://app.example.com"), (b"host", b"taxi.example.com")]
        dev = [(b"origin", b"http://localhost:3000"), (b"host", b"127.0.0.1:8000")]

        for headers in (same, listed, dev):
            await open_socket(rider, headers=headers)

    async def test_scheme_must_match_a_listed_origin(self, refused, rider, settings):
        settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://app.example.com"]
        tokens = await tokens_for(rider)

        assert await refused(
            f"/taxi/?token={tokens['access']}",
            headers=[(b"origin", b"http://app.example.com"), (b"host", b"taxi.example.com")],
        )


class TestTickets:
    async def ticket(self, client) -> str:
        response = await sync_to_async(client.post)("/api/ws-ticket/")
        assert response.status_code == 200
        assert response.json()["expires_in"] == 30
        return response.json()["ticket"]

    async def test_a_ticket_opens_one_socket_once(self, open_socket, refused, rider, client_for):
        ticket = await self.ticket(await sync_to_async(client_for)(rider))

        socket = await open_socket(rider, query=f"ticket={ticket}")
        await socket.send({"type": "echo.message", "data": "hi"})
        assert (await socket.receive())["data"] == "hi"
        assert await refused(f"/taxi/?ticket={ticket}")

    async def test_unknown_ticket_is_refused(self, refused):
        assert await refused("/taxi/?ticket=made-up")

    async def test_ticket_needs_authentication(self, api_client):
        response = await sync_to_async(api_client.post)("/api/ws-ticket/")

        assert response.status_code == 401

    async def test_an_expired_ticket_is_refused(self, refused, rider, client_for, settings):
        # The cache's own clock decides expiry; the local-memory cache follows time_machine.
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        with time_machine.travel(0, tick=False) as traveller:
            ticket = await self.ticket(await sync_to_async(client_for)(rider))
            traveller.shift(31)

            assert await refused(f"/taxi/?ticket={ticket}")

    async def test_a_web_session_can_buy_a_ticket(self, open_socket, rider, client):
        await sync_to_async(client.login)(username=rider.username, password=PASSWORD)

        ticket = await self.ticket(client)

        await open_socket(rider, query=f"ticket={ticket}")


async def test_session_cookie_authenticates_same_origin_pages(open_socket, rider, client):
    await sync_to_async(client.force_login)(rider)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    socket = await open_socket(
        rider,
        query="",
        headers=[(b"cookie", cookie), (b"origin", b"http://testserver"), (b"host", b"testserver")],
    )

    await socket.send({"type": "echo.message", "data": 1})
    assert (await socket.receive())["data"] == 1


class TestClosedByTheServer:
    async def test_when_the_access_token_expires(self, open_socket, rider):
        token = await sync_to_async(AccessToken.for_user)(rider)
        token.set_exp(lifetime=timedelta(seconds=1))

        socket = await open_socket(rider, query=f"token={token}")

        assert await socket.closed_with(timeout=3) == CLOSE_SESSION_ENDED

    async def test_when_its_session_logs_out_but_not_other_sessions(
        self, open_socket, rider, api_client
    ):
        phone, laptop = await tokens_for(rider), await tokens_for(rider)
        phone_socket = await open_socket(rider, query=f"token={phone['access']}")
        laptop_socket = await open_socket(rider, query=f"token={laptop['access']}")

        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {phone['access']}")
        response = await sync_to_async(api_client.post)(
            "/api/log_out/", {"refresh": phone["refresh"]}, format="json"
        )

        assert response.status_code == 204
        assert await phone_socket.closed_with() == CLOSE_SESSION_ENDED
        assert await laptop_socket.receive_nothing()
        await laptop_socket.send({"type": "echo.message", "data": "still here"})
        assert (await laptop_socket.receive())["data"] == "still here"

    async def test_when_its_web_session_logs_out(self, open_socket, rider, client):
        await sync_to_async(client.force_login)(rider)
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        page_socket = await open_socket(
            rider,
            query="",
            headers=[
                (b"cookie", cookie),
                (b"origin", b"http://testserver"),
                (b"host", b"testserver"),
            ],
        )
        app_socket = await open_socket(rider)

        assert (await sync_to_async(client.post)("/api/log_out/")).status_code == 204

        assert await page_socket.closed_with() == CLOSE_SESSION_ENDED
        assert await app_socket.receive_nothing()

    async def test_at_the_next_step_of_a_user_deactivated_behind_its_back(
        self, open_socket, rider, driver, make_trip
    ):
        trip = await sync_to_async(make_trip)(rider, status="STARTED", driver=driver)
        rider_socket = await open_socket(rider, native=True)
        driver_socket = await open_socket(driver, native=True)
        # Not through the admin, which closes the user's sockets itself.
        await sync_to_async(type(driver).objects.filter(id=driver.id).update)(is_active=False)

        await driver_socket.send(
            {
                "type": "trip.advance",
                "data": {"trip_id": str(trip.id), "status": "IN_PROGRESS"},
            }
        )

        assert await driver_socket.closed_with() == CLOSE_SESSION_ENDED
        assert await rider_socket.receive_nothing()
        assert (await sync_to_async(type(trip).objects.get)(id=trip.id)).status == "STARTED"

    async def test_when_staff_deactivate_the_user(self, open_socket, rider, make_user, client):
        staff = await sync_to_async(make_user)("", is_staff=True, is_superuser=True)
        socket = await open_socket(rider)
        await sync_to_async(client.force_login)(staff)
        form = await sync_to_async(lambda: client.get(f"/admin/accounts/user/{rider.id}/change/"))()
        assert form.status_code == 200

        response = await sync_to_async(client.post)(
            f"/admin/accounts/user/{rider.id}/change/",
            {
                "username": rider.username,
                "first_name": rider.first_name,
                "last_name": rider.last_name,
                "role": "rider",
                "is_active": "",
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
                "initial-date_joined_0": "2026-01-01",
                "initial-date_joined_1": "00:00:00",
            },
        )

        assert response.status_code == 302, response.content[:2000]
        assert await socket.closed_with() == CLOSE_SESSION_ENDED


async def test_sockets_per_user_are_bounded(open_socket, refused, rider, settings):
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 2
    await open_socket(rider)
    await open_socket(rider)
    tokens = await tokens_for(rider)

    assert await refused(f"/taxi/?token={tokens['access']}")


async def test_a_client_gone_while_a_reply_is_on_its_way_ends_the_socket_cleanly(
    channel_layer, rider
):
    """uvicorn's `send` raises once the client has gone, before the disconnect is read:
    the socket ends without an error and lets go of what it held."""
    tokens = await tokens_for(rider)
    scope = {
        "type": "websocket",
        "path": "/taxi/",
        "query_string": f"token={tokens['access']}".encode(),
        "headers": [],
        "subprotocols": [NATIVE_SUBPROTOCOL],
    }
    from_client = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "{"}]
    sent = []

    async def receive():
        if from_client:
            return from_client.pop(0)
        await asyncio.Event().wait()  # the disconnect is never read

    async def send(message):
        if message["type"] == "websocket.send" and sent[-1]["type"] == "websocket.send":
            raise ClientDisconnected  # the reply to "{", after the snapshot
        sent.append(message)

    await asyncio.wait_for(application(scope, receive, send), timeout=5)

    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.send"]
    assert sockets_per_user.open[rider.id] == 0


async def test_a_failure_handling_an_event_closes_the_socket_and_frees_it(
    open_socket, channel_layer, rider, monkeypatch, caplog
):
    socket = await open_socket(rider)

    async def failing(self, message):
        raise RuntimeError("a bug in an event's handler")

    monkeypatch.setattr(TripConsumer, "driver_location", failing)
    await channel_layer.group_send(
        user_group(rider.id), {"type": "driver.location", "position": {}}
    )

    assert await socket.closed_with() == CLOSE_INTERNAL_ERROR
    assert "a bug in an event's handler" in caplog.text
    await socket.communicator.send_input({"type": "websocket.disconnect", "code": 1011})
    await socket.communicator.wait(timeout=2)
    assert sockets_per_user.open[rider.id] == 0


async def test_a_socket_reads_its_events_in_one_task_of_its_own(open_socket, rider):
    """Its client's messages are read in the task it was given, to save a task and a
    task group for every socket (docs/benchmarks.md, finding 50)."""
    loop = asyncio.get_running_loop()
    made = []

    def counted(loop, coroutine, **kwargs):
        made.append(coroutine.__qualname__)
        return asyncio.Task(coroutine, loop=loop, **kwargs)

    loop.set_task_factory(counted)
    try:
        socket = await open_socket(rider)
        await socket.send({"type": "echo.message", "data": 1})
        assert (await socket.receive())["data"] == 1
    finally:
        loop.set_task_factory(None)

    assert [name for name in made if name.startswith("TripConsumer")] == [
        "TripConsumer._events_read"
    ]


async def test_a_socket_whose_event_reader_lost_its_cancel_still_leaves(
    open_socket, rider, channel_layer, monkeypatch
):
    """A handler in a redis-py call can lose the cancel that ends the socket (Python
    3.11's wait_for, `config.tasks.stopped`): the socket still stops counting."""
    loop = asyncio.get_running_loop()
    calls: asyncio.Queue = asyncio.Queue()
    handled = 0

    async def in_a_call(self, message):
        nonlocal handled
        call = loop.create_future()
        await calls.put(call)
        await asyncio.wait_for(call, 10)
        handled += 1

    readers = []

    def kept(loop, coroutine, **kwargs):
        task = asyncio.Task(coroutine, loop=loop, **kwargs)
        if coroutine.__qualname__ == "TripConsumer._events_read":
            readers.append(task)
        return task

    monkeypatch.setattr(TripConsumer, "driver_location", in_a_call)
    monkeypatch.setattr(tasks, "CANCEL_AGAIN_AFTER_SECONDS", 0.01)
    loop.set_task_factory(kept)
    try:
        socket = await open_socket(rider)
    finally:
        loop.set_task_factory(None)
    await channel_layer.group_send(user_group(rider.id), {"type": "driver.location"})
    call = await calls.get()
    assert sockets_per_user.open[rider.id] == 1

    # The call finishes, and the socket's task is cancelled (as a server's shutdown
    # does) before its event reader has resumed: that reader's first cancel is lost.
    call.set_result(None)
    socket.communicator.future.cancel()
    done, _ = await asyncio.wait([socket.communicator.future], timeout=5)

    assert done and handled == 1
    # Its reader ended, rather than being left behind.
    assert [reader.cancelled() for reader in readers] == [True]
    assert sockets_per_user.open[rider.id] == 0
