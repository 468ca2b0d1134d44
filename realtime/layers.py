"""The channel layer: channels_redis's pub/sub layer, publishing in pipelines.

channels_redis publishes one message a round trip to Redis and holds a lock of the
process's while it waits for the reply, so every position and event a process sends
queues behind the one before it: under load the queue, not the work, sets the latency.
Here the messages that queued while one round trip was out go together in the next.

This reaches into channels_redis 4.3 (its per-loop layers and their shards), as pinned
in requirements/base.txt; `realtime/tests/test_layers.py` fails if an upgrade moves them.
"""

import asyncio

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisSingleShardConnection

from dispatch.redis_clients import Outbox


class PipelinedShardConnection(RedisSingleShardConnection):
    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        # The lock is the one subscribing takes, as channels_redis has it.
        self._outbox = Outbox[tuple[str, bytes]](self._publish_all, lock=self._lock)

    async def publish(self, channel, message):
        await self._outbox.put((channel, message))

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        self._ensure_redis()
        pipeline = self._redis.pipeline(transaction=False)
        for channel, message in messages:
            pipeline.publish(channel, message)
        await pipeline.execute()


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    """`RedisPubSubChannelLayer`, configured the same way, with pipelined publishing."""

    def _get_layer(self):
        new = asyncio.get_running_loop() not in self._layers
        layer = super()._get_layer()
        if new:
            layer._shards = [PipelinedShardConnection(shard.host, layer) for shard in layer._shards]
        return layer
