import asyncio
import threading

import pytest
from asgiref import sync
from channels.testing import HttpCommunicator
from django.core.signals import request_started
from django.db import connections

from config.asgi import application
from config.http import RequestThreads


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
