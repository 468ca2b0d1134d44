"""A trip's last known position, kept in Redis: the latest kept wins, it is forgotten
LAST_POSITION_SECONDS after it was kept."""

import asyncio

import pytest
import redis.asyncio
from django.conf import settings

from dispatch.tracking import LAST_POSITION_SECONDS, RedisLastPositions

pytestmark = pytest.mark.redis


@pytest.fixture
async def stored():
    """The positions, and a client to look at what Redis holds; the trips' keys are
    deleted afterwards."""
    positions = RedisLastPositions(settings.REDIS_URL)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    yield positions, client
    await client.delete(*(positions._key(trip) for trip in ("t1", "t2", "t3")))
    await client.aclose()


async def test_the_latest_position_kept_is_the_one_given_back(stored):
    positions, _ = stored
    await positions.position_keep("t1", {"lat": 1.0})
    await positions.position_keep("t2", {"lat": 2.0})
    await positions.position_keep("t1", {"lat": 1.5})

    assert await positions.positions_of(["t1", "t2", "t3"]) == {
        "t1": {"lat": 1.5},
        "t2": {"lat": 2.0},
    }


async def test_a_position_is_kept_for_its_time_and_no_longer(stored):
    positions, client = stored
    await positions.position_keep("t1", {"lat": 1.0})

    left = await client.ttl(positions._key("t1"))

    # A second of slack for a slow test.
    assert LAST_POSITION_SECONDS - 1 <= left <= LAST_POSITION_SECONDS


async def test_reads_asked_at_once_go_in_one_pipeline_each_with_its_own_trips(stored):
    positions, _ = stored
    for trip in ("t1", "t2", "t3"):
        await positions.position_keep(trip, {"trip": trip})
    writer = positions._readers.get()
    batches = []
    replies = writer.replies

    async def recorded(client, commands):
        batches.append(len(commands))
        return await replies(client, commands)

    writer.replies = recorded

    read = await asyncio.gather(
        positions.positions_of(["t1"]),
        positions.positions_of(["t2", "t3"]),
        positions.positions_of(["t4", "t1"]),
        positions.positions_of(["t3"]),
    )

    assert read == [
        {"t1": {"trip": "t1"}},
        {"t2": {"trip": "t2"}, "t3": {"trip": "t3"}},
        {"t1": {"trip": "t1"}},
        {"t3": {"trip": "t3"}},
    ]
    assert batches == [4]
