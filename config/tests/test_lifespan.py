import asyncio
import contextlib
import gc

import pytest
from django.db import OperationalError

from accounts.sessions import revoked_sessions
from config.lifespan import COLLECTION_THRESHOLDS, Lifespan
from realtime import database


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@contextlib.asynccontextmanager
async def server_process():
    """A server process's lifespan, from its start until its shutdown is complete."""
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    server = asyncio.create_task(Lifespan()({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = asyncio.ensure_future(outbox.get())
    await asyncio.wait([started, server], return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        server.result()  # what ended it before it started
    assert started.result() == {"type": "lifespan.startup.complete"}
    yield
    await inbox.put({"type": "lifespan.shutdown"})
    assert await outbox.get() == {"type": "lifespan.shutdown.complete"}
    await server


async def test_a_starting_process_freezes_what_it_loaded_and_collects_less_often(
    collector_restored,
):
    gc.unfreeze()

    async with server_process():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == COLLECTION_THRESHOLDS


async def test_a_starting_process_prepares_its_database_connections_before_it_serves(
    collector_restored, monkeypatch
):
    prepared = []

    async def kept_connections_prepared():
        prepared.append("kept connections")

    monkeypatch.setattr(database, "kept_connections_prepared", kept_connections_prepared)

    async with server_process():
        assert prepared == ["kept connections"]


async def test_a_database_it_cannot_reach_does_not_keep_a_process_from_starting(
    collector_restored, monkeypatch, caplog
):
    async def kept_connections_prepared():
        raise OperationalError("connection refused")

    monkeypatch.setattr(database, "kept_connections_prepared", kept_connections_prepared)

    async with server_process():
        assert "Preparing the database's connections failed" in caplog.text


@pytest.mark.redis
async def test_a_server_process_follows_log_outs_while_it_runs(collector_restored):
    revoked = revoked_sessions()

    async with server_process():
        await asyncio.wait_for(revoked.until_trusted(), 10)

    assert not revoked.copy.trusted()
