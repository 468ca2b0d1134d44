"""The Redis channel layer publishes what queued behind a round trip in one pipeline,
and every message still arrives once, in order."""

import asyncio

import pytest
from channels.layers import get_channel_layer
from redis.asyncio.connection import DefaultParser
from redis.utils import HIREDIS_AVAILABLE

from config.lean_asyncio import LeanQueue
from realtime.layers import PipelinedShardConnection

pytestmark = pytest.mark.redis


async def test_messages_sent_at_once_arrive_in_order_in_fewer_round_trips(monkeypatch):
    pipelines: list[int] = []
    publish_all = PipelinedShardConnection._publish_all

    async def counted(self, messages):
        pipelines.append(len(messages))
        await publish_all(self, messages)

    # Before the layer makes this loop's connections, which take the method.
    monkeypatch.setattr(PipelinedShardConnection, "_publish_all", counted)
    layer = get_channel_layer()
    await layer.flush()
    channel = await layer.new_channel()
    await layer.group_add("riders.test", channel)

    await asyncio.gather(
        *(layer.group_send("riders.test", {"type": "x", "n": n}) for n in range(50))
    )
    received = [(await layer.receive(channel))["n"] for _ in range(50)]

    assert received == list(range(50))
    assert sum(pipelines) == 50
    assert len(pipelines) < 50
    await layer.flush()


async def test_a_channel_s_messages_wait_in_a_lean_queue():
    layer = get_channel_layer()
    channel = await layer.new_channel()

    await layer.send(channel, {"type": "trip.event", "n": 1})

    assert type(layer._get_layer().channels[channel]) is LeanQueue
    assert await layer.receive(channel) == {"type": "trip.event", "n": 1}
    await layer.flush()


def test_redis_replies_are_parsed_by_hiredis():
    # redis-py parses replies in Python unless hiredis is installed: without it, parsing
    # took a tenth of the server's CPU in the tracking benchmark (finding 28).
    assert HIREDIS_AVAILABLE
    assert DefaultParser.__name__ == "_AsyncHiredisParser"
