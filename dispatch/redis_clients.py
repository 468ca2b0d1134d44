import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from config.tasks import raise_if_cancelled

# A burst of sockets waits for a connection rather than failing with "Too many
# connections" (redis-py's plain pool stops at 100 and raises).
POOL_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10

Item = TypeVar("Item")
Made = TypeVar("Made")
# A Redis command and its arguments, as hiredis packs them.
Command = tuple[str | bytes | int | float, ...]


class PerLoop(Generic[Made]):
    """One of something for each running event loop, made when first asked for on it.

    For what belongs to the loop it was made on: Redis clients, outboxes. In an ASGI
    server there is one loop; sync code calling through `async_to_sync` outside a
    server runs each call on a new loop, and so gets new ones each call, let go of only
    when the garbage collector takes the loop.
    """

    def __init__(self, make: Callable[[], Made]):
        self._make = make
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Made] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> Made:
        loop = asyncio.get_running_loop()
        made = self._made.get(loop)
        if made is None:
            made = self._made[loop] = self._make()
        return made

    def pop(self) -> Made | None:
        """Forgets the running loop's, and hands it back if there was one."""
        return self._made.pop(asyncio.get_running_loop(), None)


class PerLoopRedis:
    """An asyncio Redis client for each running event loop (see `PerLoop`): code that
    calls through `async_to_sync` outside a server gets a connection per call, and
    should batch its calls inside one function passed to `async_to_sync`.
    """

    def __init__(self, url: str):
        self._url = url
        self._clients = PerLoop(self._client_make)

    def client(self) -> Redis:
        return self._clients.get()

    def _client_make(self) -> Redis:
        pool = BlockingConnectionPool.from_url(
            self._url,
            max_connections=POOL_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            socket_timeout=POOL_WAIT_SECONDS,
        )
        return Redis(connection_pool=pool)

    async def close(self) -> None:
        """Closes the connections of the running event loop."""
        client = self._clients.pop()
        if client is not None:
            # The pool too, or its connections (those kept by a `CommandWriter` among
            # them) stay open until the garbage collector finds them.
            await client.aclose(close_connection_pool=True)


class CommandWriter:
    """Writes batches of Redis commands on a connection kept for them, and reads their
    replies.

    redis-py's pipeline spends most of its CPU on each command and each reply in
    Python; here hiredis packs a batch's commands into one write and parses the
    replies, and one timeout covers them all (docs/benchmarks.md, findings 59 and 60).
    The connection is one of the client's pool, so that every option of its URL holds
    (TLS, credentials, timeouts), but redis-py keeps its streams to itself: this
    reaches into redis 8.1's, as pinned in requirements/base.txt
    (`dispatch/tests/test_redis_clients.py` fails if they move).

    One batch at a time, from one event loop: an outbox's writer is its only caller.
    """

    def __init__(self):
        # The connection, and the client whose pool it came from.
        self._kept: tuple[Redis, Connection] | None = None

    async def replies(self, client: Redis, commands: list[Command]) -> list:
        """The replies to `commands`, sent on a connection of `client`'s pool.

        Raises ResponseError, once every reply is read, if Redis refused a command or
        a command of a transaction failed (EXEC's reply holds its commands' errors).
        """
        if self._kept is None or self._kept[0] is not client:
            # The client is new: closing the last one closed its connections.
            self._kept = (client, await client.connection_pool.get_connection())
        connection = self._kept[1]
        try:
            replies = await _replies_read(connection, commands)
        except BaseException:
            # Its replies may be out of step with its commands: the next batch opens
            # it anew.
            await connection.disconnect(nowait=True)
            raise
        for reply in replies:
            for error in reply if isinstance(reply, list) else (reply,):
                if isinstance(error, hiredis.ReplyError):
                    raise ResponseError(str(error))
        return replies


async def _replies_read(connection: Connection, commands: list[Command]) -> list:
    if not connection.is_connected:
        await connection.connect()
    connection._writer.write(b"".join(hiredis.pack_command(command) for command in commands))
    reader, replies = hiredis.Reader(), []
    async with asyncio.timeout(connection.socket_timeout):
        await connection._writer.drain()
        while len(replies) < len(commands):
            data = await connection._reader.read(65536)
            if not data:
                raise ConnectionError("Redis closed the connection.")
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                replies.append(reply)
    return replies


class PipelineFailed(ConnectionError):
    """The pipeline that carried an item failed or was cut off: the item may or may not
    have been written."""


class Outbox(Generic[Item]):
    """Items for Redis, written in pipelines: those put while one pipeline is out go
    together in the next, in the order they were put. One round trip then carries what
    would have queued for many, and the latency under load is the work's, not a queue's.

    A task of the outbox's writes the pipelines, and only it takes the lock: a sender
    waits for the pipeline that carries its item and for nothing else. (Senders taking
    the lock in turn, to find their items written by the one before, made a queue of
    them, a turn of the event loop each: docs/benchmarks.md, finding 58.) The task
    lives as long as its loop, so that no item costs a task of its own.

    `put` returns once the pipeline that carried its item has gone through, or raises
    PipelineFailed. If `write` returns a list, one value for each item it was given (a
    read's replies), `put` returns its item's; otherwise None. A sender that gives up
    while its item waits takes the item back; once the item is out, it goes through
    with the others it travels with. An outbox belongs to the event loop it is used on,
    as its lock and its task do (see `PerLoop`).
    """

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[list | None]],
        *,
        lock: asyncio.Lock | None = None,
    ):
        self._write = write
        # Shared with whatever else must not overlap a write (a subscription, say).
        self._lock = lock or asyncio.Lock()
        self._waiting: list[tuple[Item, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        # What the writer waits on while nothing waits to be written.
        self._idle: asyncio.Future | None = None

    async def put(self, item: Item) -> Any:
        return await self._put([item])

    async def put_all(self, items: list[Item]) -> None:
        """Every item in the same pipeline, in order; once through, nothing to give
        back. One future and one wait for them all, not one each."""
        if items:  # none: no pipeline would ever settle their future
            await self._put(items)

    async def _put(self, items: list[Item]) -> Any:
        written = asyncio.get_running_loop().create_future()
        self._waiting += [(item, written) for item in items]
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_while_open())
        elif self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        # A sender cancelled here cancels `written`, which takes its items back unless
        # they are out already (see `_flush`).
        return await written

    async def _write_while_open(self) -> None:
        try:
            while True:
                # The subscriptions' writes go through redis-py's `wait_for`, which
                # can lose the closing loop's cancel.
                raise_if_cancelled()
                if not self._waiting:
                    self._idle = asyncio.get_running_loop().create_future()
                    await self._idle
                async with self._lock:
                    await self._flush()
        finally:
            # Cancelled: its loop is closing. What waits will not be written.
            self._writer = self._idle = None
            self._fail(self._waiting, asyncio.CancelledError())
            self._waiting = []

    async def _flush(self) -> None:
        batch = [(item, written) for item, written in self._waiting if not written.cancelled()]
        self._waiting = []
        if not batch:
            return
        try:
            replies = await self._write([item for item, _ in batch])
        except BaseException as error:
            self._fail(batch, error)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        for index, (_, written) in enumerate(batch):
            if not written.done():
                written.set_result(None if replies is None else replies[index])

    @staticmethod
    def _fail(batch: list[tuple[Item, asyncio.Future]], error: BaseException) -> None:
        for _, written in batch:
            if not written.done():
                failure = PipelineFailed("Writing to Redis failed.")
                failure.__cause__ = error
                written.set_exception(failure)
