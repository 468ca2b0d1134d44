import asyncio
import gc
import threading

import pytest
from asgiref import sync
from channels.testing import HttpCommunicator
from django.core.signals import request_started
from django.db import connections
from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import Token

from accounts.services import session_tokens_issue
from config.asgi import application, django_http
from config.http import RequestThreads
from trips.fast_list import ListAsked


def docs_request() -> HttpCommunicator:
    return HttpCommunicator(application, "GET", "/api/docs/", headers=[(b"host", b"localhost")])


async def test_a_request_hops_to_a_thread_once_for_its_middleware_and_view(monkeypatch):
    calls = []
    hop = sync.SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await hop(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)

    response = await docs_request().get_response(timeout=10)

    assert response["status"] == 200
    # The request_started signal's receivers, then the middleware chain with the view;
    # Django's own async chain hops for every middleware hook besides.
    assert len(calls) == 2, calls


async def test_requests_run_on_a_kept_request_thread_not_a_new_one_each():
    threads = []

    def seen(**kwargs):
        threads.append(threading.current_thread())

    request_started.connect(seen)
    try:
        first = await docs_request().get_response(timeout=10)
        second = await docs_request().get_response(timeout=10)
    finally:
        request_started.disconnect(seen)

    assert first["status"] == second["status"] == 200
    assert len(threads) == 2
    assert threads[0].name.startswith("request")
    assert threads[1] is threads[0]
    assert threads[0].is_alive()


async def test_requests_beyond_the_threads_wait_for_one_to_be_given_back():
    threads = RequestThreads(2)
    first, second = threads.borrowed(), threads.borrowed()
    one = await first.__aenter__()
    two = await second.__aenter__()
    third_in = asyncio.Event()
    got = []

    async def third():
        async with threads.borrowed() as thread:
            got.append(thread)
            third_in.set()

    waiting = asyncio.create_task(third())
    await asyncio.sleep(0)  # the third request runs up to its wait for a thread
    assert not third_in.is_set()
    assert one is not two

    await second.__aexit__(None, None, None)
    await asyncio.wait_for(third_in.wait(), timeout=5)
    await waiting
    await first.__aexit__(None, None, None)

    assert got == [two]


def connected():
    """The calling thread's own database connection, opened."""
    connection = connections["default"]
    connection.ensure_connection()
    return connection


# SQLite's in-memory test database is never closed, by design.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_closing_the_threads_closes_their_database_connections_and_ends_them():
    threads = RequestThreads(1)
    async with threads.borrowed() as thread:
        used = await asyncio.wrap_future(thread.submit(connected))
    assert used.connection is not None

    threads.close()

    assert used.connection is None
    with pytest.raises(RuntimeError):
        thread.submit(connected)


# --- What a request leaves behind ----------------------------------------------------------


async def served_as_uvicorn_serves(app, path: str, token: str) -> int:
    """A GET through `app`, whose `receive` says the client has gone once the response
    is complete, as uvicorn's does on a kept-alive connection."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"limit=20",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    body_read, complete = False, asyncio.Event()
    statuses = []

    async def receive():
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif not message.get("more_body"):
            complete.set()

    await app(scope, receive, send)
    return statuses[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("through", ["django", "fast path"])
async def test_a_request_its_response_and_its_view_are_freed_without_the_collector(rider, through):
    # The trip list, the hottest request, through Django and through its fast path
    # (trips.fast_list). A reference cycle among them would leave them to the garbage
    # collector, whose every young collection they then make longer (docs/benchmarks.md,
    # finding 53).
    app = django_http if through == "django" else application
    token = (await sync.sync_to_async(session_tokens_issue)(user=rider))["access"]
    assert await served_as_uvicorn_serves(app, "/api/trip/", token) == 200  # warmed up

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        statuses = [await served_as_uvicorn_serves(app, "/api/trip/", token) for _ in range(3)]
        gc.collect()
        left = [
            type(garbage).__name__
            for garbage in gc.garbage
            if isinstance(
                garbage,
                (
                    HttpRequest,
                    HttpResponseBase,
                    APIView,
                    Request,
                    BaseSerializer,
                    Exception,
                    ListAsked,
                    Token,
                ),
            )
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert statuses == [200, 200, 200]
    assert left == []
