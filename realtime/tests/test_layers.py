"""The Redis channel layer publishes what queued behind a round trip in one pipeline,
and every message still arrives once, in order; a pipeline that Redis refuses, that is
cut off or that gets no answer in time fails its senders, and the next goes through.
Subscriptions asked for at once go in few commands, each run of subscribing or leaving
in its order. Its subscriptions hand on every message a read of the socket brought, in
order, redis-py keeps its account of them, an error read among them is logged
without losing the rest, and a subscription whose connection is cut off is made again."""

import asyncio
import itertools
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from redis.asyncio.client import PubSub
from redis.asyncio.connection import DefaultParser
from redis.exceptions import ResponseError
from redis.utils import HIREDIS_AVAILABLE

from config.lean_asyncio import LeanQueue
from dispatch.redis_clients import PipelineFailed
from realtime.layers import PipelinedPubSubChannelLayer, PipelinedShardConnection

pytestmark = pytest.mark.redis


@pytest.fixture
def pipelines(monkeypatch) -> list[int]:
    """How many messages each pipeline the layer publishes carries. Ask for it before
    the layer makes the loop's connections, which take the method."""
    sizes: list[int] = []
    publish_all = PipelinedShardConnection._publish_all

    async def counted(self, messages):
        sizes.append(len(messages))
        await publish_all(self, messages)

    monkeypatch.setattr(PipelinedShardConnection, "_publish_all", counted)
    return sizes


async def test_messages_sent_at_once_arrive_in_order_in_fewer_round_trips(pipelines):
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


async def test_deliveries_sent_at_once_go_in_one_pipeline_each_message_serialized_once(
    pipelines, monkeypatch
):
    layer = get_channel_layer()
    await layer.flush()
    try:
        rider, driver, origin = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("user.1", rider)
        await layer.group_add("user.2", driver)
        # A channel that is not a socket's: subscribed to under its own name.
        await layer._get_layer()._subscribe_to_channel("taxi-general")
        serialized = []
        serialize = layer.serialize
        monkeypatch.setattr(layer, "serialize", lambda m: serialized.append(m) or serialize(m))
        event, reply, later = ({"type": "x", "n": n} for n in range(3))

        await layer.send_all(
            [
                ("group", "user.1", event),
                ("group", "user.2", event),
                ("channel", origin, reply),
                ("channel", "taxi-general", event),
                ("group", "user.1", later),
            ]
        )

        async with asyncio.timeout(5):
            assert [await layer.receive(rider), await layer.receive(rider)] == [event, later]
            assert await layer.receive(driver) == event
            assert await layer.receive(origin) == reply
            assert await layer.receive("taxi-general") == event
        assert serialized == [event, reply, later]
        assert pipelines == [5]
    finally:
        await layer.flush()


async def test_deliveries_sent_at_once_over_two_shards_each_arrive(settings, monkeypatch):
    published: dict[PipelinedShardConnection, list[str]] = {}
    publish_all = PipelinedShardConnection.publish_all

    async def recorded(self, messages):
        published.setdefault(self, []).extend(channel for channel, _ in messages)
        await publish_all(self, messages)

    monkeypatch.setattr(PipelinedShardConnection, "publish_all", recorded)
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    # Two shards on the one Redis: publishing is server-wide, so each still hears.
    layer = PipelinedPubSubChannelLayer(hosts=[settings.REDIS_URL] * 2, prefix=config["prefix"])
    try:
        loop_layer = layer._get_layer()

        def shard_of(group: str):
            return loop_layer._get_shard(loop_layer._get_group_channel_name(group))

        # Four groups that fall on each shard.
        names = [f"user.{n}" for n in range(1000)]
        groups = [g for g in names if shard_of(g) is loop_layer._shards[0]][:4]
        groups += [g for g in names if shard_of(g) is loop_layer._shards[1]][:4]
        assert len(groups) == 8
        channels = [await layer.new_channel() for _ in groups]
        for group, channel in zip(groups, channels, strict=True):
            await layer.group_add(group, channel)
        event = {"type": "x", "n": 1}

        await layer.send_all([("group", group, event) for group in groups])

        async with asyncio.timeout(5):
            assert [await layer.receive(channel) for channel in channels] == [event] * 8
        # Each shard published its own four groups, and no other's.
        group_channel = loop_layer._get_group_channel_name
        assert published == {
            loop_layer._shards[0]: [group_channel(group) for group in groups[:4]],
            loop_layer._shards[1]: [group_channel(group) for group in groups[4:]],
        }
    finally:
        await layer.flush()


async def test_a_channel_s_messages_wait_in_a_lean_queue():
    layer = get_channel_layer()
    channel = await layer.new_channel()

    await layer.send(channel, {"type": "trip.event", "n": 1})

    assert type(layer._get_layer().channels[channel]) is LeanQueue
    async with asyncio.timeout(5):
        assert await layer.receive(channel) == {"type": "trip.event", "n": 1}
    await layer.flush()


async def test_the_layer_s_calls_reach_the_loop_s_layer_without_its_proxy(monkeypatch):
    proxied: list[str] = []
    proxy = RedisPubSubChannelLayer.__getattr__

    def recorded(self, name):
        proxied.append(name)
        return proxy(self, name)

    monkeypatch.setattr(RedisPubSubChannelLayer, "__getattr__", recorded)
    layer = get_channel_layer()
    await layer.flush()
    channel = await layer.new_channel()
    await layer.group_add("riders.test", channel)
    await layer.group_send("riders.test", {"type": "x", "n": 1})
    await layer.send(channel, {"type": "x", "n": 2})
    async with asyncio.timeout(5):
        received = [(await layer.receive(channel))["n"] for _ in range(2)]
    await layer.group_discard("riders.test", channel)
    await layer.group_send("riders.test", {"type": "x", "n": 3})
    await layer.send(channel, {"type": "x", "n": 4})

    assert received == [1, 2]
    async with asyncio.timeout(5):
        assert (await layer.receive(channel))["n"] == 4  # 3 went to a group it had left
    await layer.flush()
    assert proxied == []


class HeldReader:
    """A subscription's reader held at its next read of the socket until released, so
    that what is sent meanwhile waits there to be read at once; counts the reads."""

    def __init__(self, parser):
        self.held, self.release, self.reads = asyncio.Event(), asyncio.Event(), 0
        self._read = parser.read_from_socket
        parser.read_from_socket = self._read_when_released

    @classmethod
    async def of(cls, layer) -> "HeldReader":
        """Held from the read after the one the reader may be waiting in: the message
        {"n": -1} to the group `published` ends that read."""
        (shard,) = layer._get_layer()._shards
        reader = cls(shard._pubsub.connection._parser)
        await layer.group_send("published", {"type": "x", "n": -1})
        async with asyncio.timeout(5):
            await reader.held.wait()
        return reader

    async def _read_when_released(self):
        self.held.set()
        await self.release.wait()
        self.reads += 1
        return await self._read()


async def test_messages_read_at_once_arrive_in_order_and_subscriptions_stay_accounted(listener):
    layer, channel = listener
    leaving = await layer.new_channel()
    await layer.group_add("leaving", leaving)
    (shard,) = layer._get_layer()._shards
    pubsub = shard._pubsub
    group_channel = layer._get_layer()._get_group_channel_name("leaving")
    # What follows waits on the socket and is read at once: messages, the confirmation
    # of an unsubscription, messages again.
    reader = await HeldReader.of(layer)
    for n in range(100):
        await layer.group_send("published", {"type": "x", "n": n})
    await layer.group_discard("leaving", leaving)
    assert group_channel.encode() in pubsub.pending_unsubscribe_channels
    for n in range(100, 200):
        await layer.group_send("published", {"type": "x", "n": n})
    reader.release.set()

    async with asyncio.timeout(5):
        received = [(await layer.receive(channel))["n"] for _ in range(201)]

    assert received == list(range(-1, 200))
    # The messages came from the parser, a read of the socket bringing many.
    assert reader.reads < 20
    # redis-py heard the confirmation, read among the messages, and forgot the channel.
    assert not pubsub.pending_unsubscribe_channels
    assert group_channel.encode() not in pubsub.channels


async def test_an_error_read_among_messages_is_logged_and_the_messages_still_arrive(
    listener, caplog
):
    layer, channel = listener
    (shard,) = layer._get_layer()._shards
    pubsub = shard._pubsub
    reader = await HeldReader.of(layer)
    for n in range(10):
        await layer.group_send("published", {"type": "x", "n": n})
    # A command Redis does not know: it answers with an error.
    await pubsub.connection.send_command("NO-SUCH-COMMAND")
    for n in range(10, 20):
        await layer.group_send("published", {"type": "x", "n": n})
    reader.release.set()

    async with asyncio.timeout(5):
        received = [(await layer.receive(channel))["n"] for _ in range(21)]

    assert received == list(range(-1, 20))
    (failure,) = [record for record in caplog.records if record.exc_info]
    assert failure.getMessage() == "Receiving from Redis failed."
    assert failure.exc_info[0] is ResponseError


@pytest.fixture
def subscriptions(monkeypatch) -> list[tuple]:
    """The channel names of every SUBSCRIBE the layer sends, a list for each command."""
    commands: list[tuple] = []
    execute_command = PubSub.execute_command

    async def counted(self, *args):
        if args[0] == "SUBSCRIBE":
            commands.append(args[1:])
        return await execute_command(self, *args)

    monkeypatch.setattr(PubSub, "execute_command", counted)
    return commands


async def test_subscriptions_asked_at_once_go_in_fewer_commands_and_each_group_hears(
    subscriptions,
):
    layer = get_channel_layer()
    try:
        channels = await asyncio.gather(*(layer.new_channel() for _ in range(50)))
        subscriptions.clear()
        await asyncio.gather(
            *(layer.group_add(f"user.{n}", channel) for n, channel in enumerate(channels))
        )
        for n in range(50):
            await layer.group_send(f"user.{n}", {"type": "x", "n": n})

        async with asyncio.timeout(5):
            received = [(await layer.receive(channel))["n"] for channel in channels]

        assert received == list(range(50))
        groups = [layer._get_layer()._get_group_channel_name(f"user.{n}") for n in range(50)]
        assert sorted(name for names in subscriptions for name in names) == sorted(groups)
        assert len(subscriptions) < 50
    finally:
        await layer.flush()


async def test_a_socket_s_channel_costs_no_subscription_and_hears_what_is_sent_to_it(
    subscriptions,
):
    layer = get_channel_layer()
    try:
        channels = await asyncio.gather(*(layer.new_channel() for _ in range(50)))
        for n, channel in enumerate(channels):
            await layer.send(channel, {"type": "x", "n": n})

        async with asyncio.timeout(5):
            received = [(await layer.receive(channel))["n"] for channel in channels]

        assert received == list(range(50))
        # One subscription, to the process's name, for all of them.
        (names,) = subscriptions
        (process_name,) = names
        assert all(channel.startswith(process_name) for channel in channels)
        assert all(layer._get_layer().channels[channel].empty() for channel in channels)
    finally:
        await layer.flush()


async def test_another_process_s_messages_to_a_socket_arrive_in_the_order_sent(settings, listener):
    receiving, channel = listener
    other = publishing_layer(settings, settings.REDIS_URL)
    try:
        for n in range(10):
            if n % 2:
                await other.send(channel, {"type": "x", "n": n})
            else:
                await other.group_send("published", {"type": "x", "n": n})

        async with asyncio.timeout(5):
            received = [(await receiving.receive(channel))["n"] for _ in range(10)]

        assert received == list(range(10))
    finally:
        await other.flush()


async def test_a_socket_s_channel_ended_is_forgotten_and_the_others_still_hear(listener):
    layer, channel = listener
    ended = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(ended))
    await asyncio.sleep(0)  # waiting for a message

    receiving.cancel()
    await asyncio.gather(receiving, return_exceptions=True)
    await layer.send(ended, {"type": "x", "n": 1})
    await layer.send(channel, {"type": "x", "n": 2})

    async with asyncio.timeout(5):
        assert await layer.receive(channel) == {"type": "x", "n": 2}
    assert ended not in layer._get_layer().channels
    with pytest.raises(ValueError):
        await layer.receive(ended)


async def test_a_group_left_and_joined_at_once_is_joined(listener):
    layer, _ = listener
    leaving, joining = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("changing", leaving)

    # The last member's leave unsubscribes, the join subscribes again: in that order.
    await asyncio.gather(
        layer.group_discard("changing", leaving), layer.group_add("changing", joining)
    )
    await layer.group_send("changing", {"type": "x", "n": 1})

    async with asyncio.timeout(5):
        assert await layer.receive(joining) == {"type": "x", "n": 1}


async def test_a_group_joined_and_left_at_once_is_left(listener):
    layer, channel = listener
    member = await layer.new_channel()
    group_channel = layer._get_layer()._get_group_channel_name("changing")

    await asyncio.gather(
        layer.group_add("changing", member), layer.group_discard("changing", member)
    )
    await layer.group_send("changing", {"type": "x", "n": 1})
    # On the same subscription's connection, after what was sent to the group.
    await layer.group_send("published", {"type": "x", "n": 2})

    async with asyncio.timeout(5):
        assert await layer.receive(channel) == {"type": "x", "n": 2}
    (shard,) = layer._get_layer()._shards
    assert group_channel not in shard._subscribed_to
    assert group_channel.encode() not in shard._pubsub.channels


def test_redis_replies_are_parsed_by_hiredis():
    # redis-py parses replies in Python unless hiredis is installed: without it, parsing
    # took a tenth of the server's CPU in the tracking benchmark (finding 28).
    assert HIREDIS_AVAILABLE
    assert DefaultParser.__name__ == "_AsyncHiredisParser"


@pytest.fixture
def redis_admin(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
async def listener():
    """The configured layer, with a channel in the group `published`."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("published", channel)
    yield layer, channel
    await layer.flush()


def publishing_layer(settings, url: str, socket_timeout: float = 10):
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    hosts = [{"address": url, "socket_timeout": socket_timeout}]
    return PipelinedPubSubChannelLayer(hosts=hosts, prefix=config["prefix"])


async def test_a_publish_redis_refuses_fails_and_once_allowed_the_next_arrives(
    settings, redis_admin, listener
):
    user = "taxi-test-publisher"
    acl = ("ACL", "SETUSER", user, "reset", "on", ">secret", "~*", "&*", "+@all")
    redis_admin.execute_command(*acl, "-publish")
    parts = urlsplit(settings.REDIS_URL)
    address = parts.hostname + (f":{parts.port}" if parts.port else "")
    url = urlunsplit(parts._replace(netloc=f"{user}:secret@{address}"))
    layer, (receiving, channel) = publishing_layer(settings, url), listener
    try:
        with pytest.raises(PipelineFailed) as failed:
            await layer.group_send("published", {"type": "x", "n": 1})
        assert isinstance(failed.value.__cause__, ResponseError)
        assert "NOPERM" in str(failed.value.__cause__)

        redis_admin.execute_command(*acl, "+publish")
        await layer.group_send("published", {"type": "x", "n": 2})
        assert await receiving.receive(channel) == {"type": "x", "n": 2}
    finally:
        await layer.flush()
        redis_admin.execute_command("ACL", "DELUSER", user)


async def test_a_subscription_cut_off_is_made_again_and_its_messages_arrive(redis_admin, listener):
    layer, channel = listener
    await layer.group_send("published", {"type": "x", "n": -1})
    async with asyncio.timeout(5):
        assert await layer.receive(channel) == {"type": "x", "n": -1}
    (shard,) = layer._get_layer()._shards
    host, port = shard._pubsub.connection._writer.get_extra_info("sockname")[:2]

    redis_admin.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")

    # Redis keeps nothing for a subscriber that is away: what is published before the
    # subscription is made again is gone, so publish until a message arrives. (A
    # receive cancelled would leave the channel: channels_redis's way.)
    receiving = asyncio.ensure_future(layer.receive(channel))
    async with asyncio.timeout(10):
        for n in itertools.count():
            await layer.group_send("published", {"type": "x", "n": n})
            arrived, _ = await asyncio.wait({receiving}, timeout=0.2)
            if arrived:
                break
    assert receiving.result()["type"] == "x"
    sockname = shard._pubsub.connection._writer.get_extra_info("sockname")[:2]
    assert sockname != (host, port)
    # The process's own name is subscribed again too: its sockets still hear their own.
    await layer.send(channel, {"type": "x", "n": "own"})
    async with asyncio.timeout(5):
        while (await layer.receive(channel))["n"] != "own":
            pass  # what the group was sent while the subscription was made again


async def test_a_reader_whose_cancel_a_reconnection_lost_still_ends(listener, monkeypatch):
    """As when the loop closes while the subscription's reader is in redis-py's
    `wait_for` of a reconnection, whose call has just finished: Python 3.11 then loses
    the cancel."""
    layer, _ = listener
    (shard,) = layer._get_layer()._shards
    calls: asyncio.Queue = asyncio.Queue()

    async def nothing_read() -> bool:
        return False  # the connection failed: redis-py's own read connects again

    async def message_after_reconnecting(**_):
        call = asyncio.get_running_loop().create_future()
        calls.put_nowait(call)
        await asyncio.wait_for(call, 10)

    monkeypatch.setattr(shard, "_bytes_read", nothing_read)
    monkeypatch.setattr(shard._pubsub, "get_message", message_after_reconnecting)
    # Ends the read the reader is waiting in; it then reads the new way.
    await layer.group_send("published", {"type": "x", "n": 1})
    async with asyncio.timeout(5):
        call = await calls.get()
    reader = shard._receive_task

    call.set_result(None)
    reader.cancel()
    async with asyncio.timeout(5):
        await asyncio.wait([reader])

    assert reader.cancelled()


async def test_a_publishing_connection_cut_off_fails_its_batch_and_the_next_goes_anew(
    settings, redis_admin, listener
):
    layer, (receiving, channel) = publishing_layer(settings, settings.REDIS_URL), listener
    try:
        await layer.group_send("published", {"type": "x", "n": 1})
        assert await receiving.receive(channel) == {"type": "x", "n": 1}
        (shard,) = layer._get_layer()._shards
        _, connection = shard._writer._kept
        host, port = connection._writer.get_extra_info("sockname")[:2]
        redis_admin.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")

        with pytest.raises(PipelineFailed):
            await layer.group_send("published", {"type": "x", "n": 2})
        await layer.group_send("published", {"type": "x", "n": 3})

        assert await receiving.receive(channel) == {"type": "x", "n": 3}
    finally:
        await layer.flush()


async def test_a_publish_with_no_answer_in_time_fails_and_the_next_goes_through(
    settings, redis_admin, listener
):
    layer = publishing_layer(settings, settings.REDIS_URL, socket_timeout=0.3)
    receiving, channel = listener
    try:
        await layer.group_send("published", {"type": "x", "n": 1})
        assert await receiving.receive(channel) == {"type": "x", "n": 1}
        # Redis holds every write command, PUBLISH among them, until it is unpaused.
        redis_admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            # Bounded here too, so that a publish that waits for ever fails the test.
            with pytest.raises(PipelineFailed) as failed:
                async with asyncio.timeout(5):
                    await layer.group_send("published", {"type": "x", "n": 2})
        finally:
            redis_admin.execute_command("CLIENT", "UNPAUSE")
        assert isinstance(failed.value.__cause__, TimeoutError)

        await layer.group_send("published", {"type": "x", "n": 3})

        # The failed message was written, so it may or may not have gone out before
        # its connection was dropped; the next one goes out either way.
        received = await receiving.receive(channel)
        if received["n"] == 2:
            received = await receiving.receive(channel)
        assert received == {"type": "x", "n": 3}
    finally:
        await layer.flush()


async def test_a_flush_closes_the_publishing_connection_and_publishing_goes_on(settings, listener):
    layer, (receiving, channel) = publishing_layer(settings, settings.REDIS_URL), listener
    (shard,) = layer._get_layer()._shards
    try:
        await layer.group_send("published", {"type": "x", "n": 1})
        assert await receiving.receive(channel) == {"type": "x", "n": 1}
        _, first = shard._writer._kept
        await layer.flush()
        assert not first.is_connected

        await layer.group_send("published", {"type": "x", "n": 2})

        assert await receiving.receive(channel) == {"type": "x", "n": 2}
        # A connection of the new client's pool, which the next flush closes too.
        _, second = shard._writer._kept
        await layer.flush()
        assert not second.is_connected
    finally:
        await layer.flush()
