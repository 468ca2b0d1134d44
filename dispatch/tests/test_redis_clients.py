"""A command writer sends a batch of commands on the connection it keeps and hands back
their replies in order; a command Redis refuses, on its own or inside a transaction,
fails the batch once every reply is read, and the next batch goes through."""

import pytest
import redis.asyncio
from django.conf import settings
from redis.exceptions import ResponseError

from dispatch.redis_clients import CommandWriter, PerLoopRedis

pytestmark = pytest.mark.redis


@pytest.fixture
async def keys():
    """Two keys of this test session's, deleted afterwards."""
    names = [f"{settings.REDIS_KEY_PREFIX}:writer:{n}" for n in (1, 2)]
    yield names
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    await client.delete(*names)
    await client.aclose()


@pytest.fixture
async def clients():
    clients = PerLoopRedis(settings.REDIS_URL)
    yield clients
    await clients.close()


async def test_a_batch_s_replies_come_back_in_the_order_of_its_commands(clients, keys):
    counter, text = keys
    writer = CommandWriter()

    replies = await writer.replies(
        clients.client(),
        [
            (b"INCRBY", counter, 2),
            (b"SET", text, "déjà", b"EX", 60),
            (b"INCRBY", counter, 3),
            (b"GET", text),
            (b"GET", counter),
        ],
    )

    assert replies == [2, b"OK", 5, "déjà".encode(), b"5"]


async def test_a_transaction_s_replies_hold_those_of_its_commands(clients, keys):
    counter, _ = keys
    writer = CommandWriter()

    replies = await writer.replies(
        clients.client(), [(b"MULTI",), (b"INCR", counter), (b"INCR", counter), (b"EXEC",)]
    )

    assert replies == [b"OK", b"QUEUED", b"QUEUED", [1, 2]]


async def test_replies_longer_than_one_read_are_all_read(clients, keys):
    counter, text = keys
    writer = CommandWriter()
    # Far more than the 64 KiB the writer reads at a time.
    long = "x" * 1_000_000

    replies = await writer.replies(
        clients.client(), [(b"SET", text, long), (b"GET", text), (b"INCR", counter)]
    )

    assert replies == [b"OK", long.encode(), 1]


async def test_a_refused_command_fails_its_batch_after_the_others_ran(clients, keys):
    counter, text = keys
    writer = CommandWriter()
    await writer.replies(clients.client(), [(b"SET", text, "not a number")])

    with pytest.raises(ResponseError, match="not an integer"):
        await writer.replies(
            clients.client(), [(b"INCR", text), (b"INCR", counter), (b"INCR", counter)]
        )

    assert await writer.replies(clients.client(), [(b"GET", counter)]) == [b"2"]


async def test_a_command_failing_inside_a_transaction_fails_its_batch(clients, keys):
    counter, text = keys
    writer = CommandWriter()
    await writer.replies(clients.client(), [(b"SET", text, "not a list")])

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await writer.replies(
            clients.client(),
            [(b"MULTI",), (b"INCR", counter), (b"LPUSH", text, "x"), (b"EXEC",)],
        )

    # Redis does not roll a transaction back: the command before the failed one ran.
    assert await writer.replies(clients.client(), [(b"GET", counter)]) == [b"1"]


async def test_a_closed_client_s_connection_is_closed_and_the_next_client_s_used(clients, keys):
    counter, _ = keys
    writer = CommandWriter()
    first_client = clients.client()
    await writer.replies(first_client, [(b"INCR", counter)])
    _, first = writer._kept

    await clients.close()

    assert not first.is_connected
    assert await writer.replies(clients.client(), [(b"INCR", counter)]) == [2]
    client, second = writer._kept
    assert client is clients.client() and client is not first_client
    assert second is not first and second.is_connected
