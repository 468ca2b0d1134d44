"""The channel layer: channels_redis's pub/sub layer, publishing in pipelines.

channels_redis publishes one message a round trip to Redis and holds a lock of the
process's while it waits for the reply, so every position and event a process sends
queues behind the one before it: under load the queue, not the work, sets the latency.
Here the messages that queued while one round trip was out go together in the next,
written and answered on a connection kept for publishing, without redis-py's pipeline.

Each channel's messages wait in a `LeanQueue` (120 bytes) instead of an `asyncio.Queue`
(3.3 KB): a channel is a socket (docs/benchmarks.md, finding 51).

This reaches into channels_redis 4.3 (its per-loop layers, their shards and channel
queues), as pinned in requirements/base.txt; `realtime/tests/test_layers.py` fails if an
upgrade moves them.
"""

import asyncio

import hiredis
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from config.lean_asyncio import LeanQueue
from dispatch.redis_clients import Outbox


class PipelinedShardConnection(RedisSingleShardConnection):
    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        # The lock is the one subscribing takes, as channels_redis has it.
        self._outbox = Outbox[tuple[str, bytes]](self._publish_all, lock=self._lock)
        # A connection of the client's pool, kept for publishing, and that client.
        self._publishing: tuple[Redis, Connection] | None = None

    async def publish(self, channel, message):
        await self._outbox.put((channel, message))

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        self._ensure_redis()
        if self._publishing is None or self._publishing[0] is not self._redis:
            # The client is new (a flush closes the last with its connections).
            self._publishing = (self._redis, await self._redis.connection_pool.get_connection())
        connection = self._publishing[1]
        try:
            await published(connection, messages)
        except BaseException:
            # Its replies may be out of step with its commands: the next batch opens
            # it anew.
            await connection.disconnect(nowait=True)
            raise


async def published(connection: Connection, messages: list[tuple[str, bytes]]) -> None:
    """PUBLISH `messages` (channel, message) on `connection`, as one write, and read
    their replies as they come; a ResponseError, once every reply is read, if Redis
    refused any.

    redis-py's pipeline spends most of its CPU on each command and each reply in
    Python; here hiredis packs the commands and parses the replies, and one timeout
    covers them all (docs/benchmarks.md, finding 59). The connection is redis-py's, so
    that every option of its URL holds (TLS, credentials, timeouts), but redis-py
    keeps its streams to itself: this reaches into redis 8.1's, as pinned in
    requirements/base.txt (`realtime/tests/test_layers.py` fails if they move).
    """
    if not connection.is_connected:
        await connection.connect()
    connection._writer.write(
        b"".join(
            hiredis.pack_command((b"PUBLISH", channel, message)) for channel, message in messages
        )
    )
    replies, read, refused = hiredis.Reader(), 0, None
    async with asyncio.timeout(connection.socket_timeout):
        await connection._writer.drain()
        while read < len(messages):
            data = await connection._reader.read(65536)
            if not data:
                raise ConnectionError("Redis closed the connection.")
            replies.feed(data)
            while (reply := replies.gets()) is not False:
                read += 1
                if isinstance(reply, hiredis.ReplyError) and refused is None:
                    refused = ResponseError(str(reply))
    if refused is not None:
        raise refused


class PipelinedPubSubLoopLayer(RedisPubSubLoopLayer):
    """channels_redis's layer for one event loop, publishing in pipelines and keeping
    each channel's messages in a `LeanQueue`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [PipelinedShardConnection(shard.host, self) for shard in self._shards]

    async def _subscribe_to_channel(self, channel):
        # As channels_redis's, with a lean queue.
        self.channels[channel] = LeanQueue()
        await self._get_shard(channel).subscribe(channel)


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    """`RedisPubSubChannelLayer`, configured the same way, with `PipelinedPubSubLoopLayer`
    for each event loop."""

    def _get_layer(self):
        # As channels_redis's, with the loop layer above.
        loop = asyncio.get_running_loop()
        if loop not in self._layers:
            self._layers[loop] = PipelinedPubSubLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)
        return self._layers[loop]
