import asyncio
import gc

import pytest

from accounts.sessions import revoked_sessions
from config.lifespan import COLLECTION_THRESHOLDS, Lifespan


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_a_starting_process_freezes_what_it_loaded_and_collects_less_often(
    collector_restored,
):
    gc.unfreeze()
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    server = asyncio.create_task(Lifespan()({"type": "lifespan"}, inbox.get, outbox.put))

    await inbox.put({"type": "lifespan.startup"})
    assert await outbox.get() == {"type": "lifespan.startup.complete"}
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == COLLECTION_THRESHOLDS

    await inbox.put({"type": "lifespan.shutdown"})
    assert await outbox.get() == {"type": "lifespan.shutdown.complete"}
    await server


@pytest.mark.redis
async def test_a_server_process_follows_log_outs_while_it_runs(collector_restored):
    revoked = revoked_sessions()
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    server = asyncio.create_task(Lifespan()({"type": "lifespan"}, inbox.get, outbox.put))

    await inbox.put({"type": "lifespan.startup"})
    assert await outbox.get() == {"type": "lifespan.startup.complete"}
    await asyncio.wait_for(revoked.until_trusted(), 10)

    await inbox.put({"type": "lifespan.shutdown"})
    assert await outbox.get() == {"type": "lifespan.shutdown.complete"}
    await server
    assert not revoked.copy.trusted()
