"""The channel layer: channels_redis's pub/sub layer, publishing and subscribing in
pipelines.

channels_redis publishes one message a round trip to Redis and holds a lock of the
process's while it waits for the reply, so every position and event a process sends
queues behind the one before it: under load the queue, not the work, sets the latency.
Here the messages that queued while one round trip was out go together in the next,
written and answered on a connection kept for publishing (see `CommandWriter`).

Subscriptions go the same way: those asked for while the layer's lock is held (by a
pipeline out, or the subscriptions before) go together in the next `SUBSCRIBE`, where
channels_redis writes one a channel, through redis-py's retrying and checking each time
(a socket asks for two as it opens: docs/benchmarks.md, finding 63).
The messages a subscription receives are taken from its connection's parser as they
stand, rather than one `get_message` each (finding 61), and their bytes are waited for
with a read of the connection's own, redis-py's read only after a failure (finding 72).

Each channel's messages wait in a `LeanQueue` (120 bytes) instead of an `asyncio.Queue`
(3.3 KB): a channel is a socket (docs/benchmarks.md, finding 51).

A socket's own channel (`new_channel`) is process-specific, as the Channels spec has
it: its name is the process's (up to the `!`) and its own after. The process subscribes
once to its name, and what is sent to any of its channels travels under that name with
the channel's in front, so that any process may still send to any socket, in the order
it sent. channels_redis subscribes each socket's channel on its own: with its user's
group, two subscriptions for every socket opened and two more as it closes (finding
86).

This reaches into channels_redis 4.3 (its per-loop layers, their shards, channel queues
and receiving task) and redis-py 8.1's hiredis parser and its reads, as pinned in
requirements/base.txt; `realtime/tests/test_layers.py` fails if an upgrade moves them.
"""

import asyncio
import itertools
import logging
import uuid

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.exceptions import ConnectionError as RedisConnectionError

from config.lean_asyncio import LeanQueue
from config.tasks import raise_if_cancelled
from dispatch.redis_clients import CommandWriter, Outbox

logger = logging.getLogger(__name__)


class PipelinedShardConnection(RedisSingleShardConnection):
    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        # The lock is the one subscribing takes, as channels_redis has it.
        self._outbox = Outbox[tuple[str, bytes]](self._publish_all, lock=self._lock)
        self._writer = CommandWriter()
        self._subscriptions = Outbox[tuple[bool, str]](self._subscriptions_change, lock=self._lock)

    async def publish(self, channel, message):
        await self._outbox.put((channel, message))

    async def publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        """Each (channel, data) published, in order, in one pipeline."""
        await self._outbox.put_all(messages)

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        self._ensure_redis()
        commands = [(b"PUBLISH", channel, message) for channel, message in messages]
        await self._writer.replies(self._redis, commands)

    async def subscribe(self, channel):
        await self._subscriptions.put((True, channel))

    async def unsubscribe(self, channel):
        await self._subscriptions.put((False, channel))

    async def _subscriptions_change(self, changes: list[tuple[bool, str]]) -> None:
        """Subscribes (True) to and unsubscribes (False) from channels as asked, in
        order: each run of subscriptions, or of unsubscriptions, one command."""
        self._ensure_redis()
        self._ensure_receiver()
        for subscribing, run in itertools.groupby(changes, key=lambda change: change[0]):
            channels = dict.fromkeys(channel for _, channel in run)
            if subscribing:
                if new := [channel for channel in channels if channel not in self._subscribed_to]:
                    await self._pubsub.subscribe(*new)
                    self._subscribed_to.update(new)
            elif held := [channel for channel in channels if channel in self._subscribed_to]:
                await self._pubsub.unsubscribe(*held)
                self._subscribed_to.difference_update(held)

    async def _do_receiving(self):
        # channels_redis's loop, waiting for the subscription's bytes itself and handing
        # on every reply they complete.
        while True:
            # redis-py connects and subscribes again through `wait_for`, which can lose
            # the closing loop's cancel.
            raise_if_cancelled()
            try:
                if self._pubsub and self._pubsub.subscribed:
                    # What the parser holds first: a failure below may have left some.
                    await self._receive_parsed()
                    if not await self._bytes_read():
                        # redis-py's own read, which connects again (and subscribes
                        # again) after a failure.
                        message = await self._pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=0.1
                        )
                        self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, TimeoutError, GeneratorExit):
                raise
            except BaseException:
                logger.exception("Receiving from Redis failed.")
                await asyncio.sleep(1)

    def _receive_message(self, message):
        # What was sent to one of the process's own channels comes under the process's
        # name, with the channel's in front (see `PipelinedPubSubLoopLayer.send`).
        if message is not None and message["channel"].endswith(b"!"):
            channel, _, data = message["data"].partition(b" ")
            queue = self.channel_layer.channels.get(channel.decode())
            if queue is not None:
                queue.put_nowait(data)
            return
        super()._receive_message(message)

    async def _bytes_read(self) -> bool:
        """Waits for the subscription's connection to bring bytes and gives them to its
        parser; False, having read nothing, if the connection is not open or fails.

        `get_message` costs about 20 µs of CPU a call (a timeout, a retry wrapper, a
        metrics hook, a health check), and a read that brings a single message, the
        common case below the heaviest load, pays it for that message alone.
        """
        connection = self._pubsub.connection
        if connection is None or not connection.is_connected:
            return False
        try:
            await connection._parser.read_from_socket()
        except (RedisConnectionError, OSError):
            return False
        return True

    async def _receive_parsed(self) -> None:
        """Hands on every reply the subscription's parser already holds.

        `get_message` costs about 20 µs of CPU a message (a timeout, a retry wrapper,
        a metrics hook), and under load a read from the socket brings many: a message
        costs 1 to 2 µs here. Any other reply (a subscription's confirmation, say) goes to
        redis-py, which keeps its account of the subscriptions by them.
        """
        connection = self._pubsub.connection
        if connection is None or not connection.is_connected:
            return
        parser = connection._parser
        while (reply := parser._reader.gets()) is not NOT_ENOUGH_DATA:
            if isinstance(reply, list) and reply[0] == b"message":
                self._receive_message({"channel": reply[1], "data": reply[2]})
            elif isinstance(reply, BaseException):
                raise reply
            else:
                self._receive_message(
                    await self._pubsub.handle_message(reply, ignore_subscribe_messages=True)
                )


class PipelinedPubSubLoopLayer(RedisPubSubLoopLayer):
    """channels_redis's layer for one event loop, publishing in pipelines and keeping
    each channel's messages in a `LeanQueue`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [PipelinedShardConnection(shard.host, self) for shard in self._shards]
        # This layer's part of its channels' names, and those of its names subscribed to.
        self._process = uuid.uuid4().hex
        self._process_names: set[str] = set()

    async def _subscribe_to_channel(self, channel):
        # As channels_redis's, with a lean queue.
        self.channels[channel] = LeanQueue()
        await self._get_shard(channel).subscribe(channel)

    async def new_channel(self, prefix="specific."):
        process_name = f"{self.prefix}{prefix}{self._process}!"
        if process_name not in self._process_names:
            await self._get_shard(process_name).subscribe(process_name)
            self._process_names.add(process_name)
        channel = f"{process_name}{uuid.uuid4().hex}"
        self.channels[channel] = LeanQueue()
        return channel

    async def send(self, channel, message):
        if "!" not in channel:
            return await super().send(channel, message)
        process_name, data = self._addressed(channel, self.channel_layer.serialize(message))
        await self._get_shard(process_name).publish(process_name, data)

    @staticmethod
    def _addressed(channel: str, data: bytes) -> tuple[str, bytes]:
        """What a process-specific channel's message is published as: under the
        process's name, with the channel's in front."""
        process_name = channel[: channel.index("!") + 1]
        return process_name, channel.encode() + b" " + data

    async def send_all(self, deliveries: list[tuple[str, str, dict]]) -> None:
        """Each ("group", name, message) sent as `group_send` sends it and each
        ("channel", name, message) as `send`, in one pipeline a shard, in order.

        A message for several recipients (a trip's event for its rider and its driver,
        an offer for ten drivers) is serialized once, and the senders wait together:
        through `group_send` each was serialized again and waited for in a task of its
        own (docs/benchmarks.md, finding 95).
        """
        serialized: dict[int, bytes] = {}
        by_shard: dict[PipelinedShardConnection, list[tuple[str, bytes]]] = {}
        for kind, name, message in deliveries:
            data = serialized.get(id(message))
            if data is None:
                data = serialized[id(message)] = self.channel_layer.serialize(message)
            if kind == "group":
                published = (self._get_group_channel_name(name), data)
            elif "!" in name:
                published = self._addressed(name, data)
            else:
                published = (name, data)
            by_shard.setdefault(self._get_shard(published[0]), []).append(published)
        publishes = [shard.publish_all(sent) for shard, sent in by_shard.items()]
        # One shard, as a single Redis has it: no task to make for it.
        await (publishes[0] if len(publishes) == 1 else asyncio.gather(*publishes))

    async def receive(self, channel):
        if "!" not in channel:
            return await super().receive(channel)
        queue = self.channels.get(channel)
        if queue is None:
            raise ValueError(f"The channel {channel} is not one of this process's.")
        try:
            data = await queue.get()
        except (asyncio.CancelledError, TimeoutError, GeneratorExit):
            # Its socket has ended (channels_redis's reading of a cancelled receive):
            # nothing to unsubscribe from, only its queue to forget.
            self.channels.pop(channel, None)
            raise
        return self.channel_layer.deserialize(data)

    async def flush(self):
        self._process_names = set()
        await super().flush()


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    """`RedisPubSubChannelLayer`, configured the same way, with `PipelinedPubSubLoopLayer`
    for each event loop.

    Its calls go straight to the running loop's layer. channels_redis reaches that
    layer through `__getattr__`, which makes a partial and a proxy coroutine for every
    call: about 2.3 µs against 0.8 a call (docs/benchmarks.md, finding 81), and every
    position a driver reports is two calls, publishing it and reading it for the rider.
    """

    def _get_layer(self):
        # As channels_redis's, with the loop layer above.
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = PipelinedPubSubLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)
        return layer

    async def new_channel(self, prefix="specific."):
        return await self._get_layer().new_channel(prefix)

    async def send(self, channel, message):
        return await self._get_layer().send(channel, message)

    async def receive(self, channel):
        return await self._get_layer().receive(channel)

    async def group_add(self, group, channel):
        return await self._get_layer().group_add(group, channel)

    async def group_discard(self, group, channel):
        return await self._get_layer().group_discard(group, channel)

    async def group_send(self, group, message):
        return await self._get_layer().group_send(group, message)

    async def send_all(self, deliveries):
        return await self._get_layer().send_all(deliveries)

    async def flush(self):
        return await self._get_layer().flush()
