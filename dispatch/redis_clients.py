import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis

# A burst of sockets waits for a connection rather than failing with "Too many
# connections" (redis-py's plain pool stops at 100 and raises).
POOL_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10

Item = TypeVar("Item")
Made = TypeVar("Made")


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
            await client.aclose()


class PipelineFailed(ConnectionError):
    """The pipeline that carried an item failed or was cut off: the item may or may not
    have been written."""


class Outbox(Generic[Item]):
    """Items for Redis, written in pipelines: those put while one pipeline is out go
    together in the next, in the order they were put. One round trip then carries what
    would have queued for many, and the latency under load is the work's, not a queue's.

    `put` returns once the pipeline that carried its item has gone through, or raises
    PipelineFailed. An outbox belongs to the event loop it is used on, as its lock does
    (see `PerLoop`).
    """

    def __init__(
        self, write: Callable[[list[Item]], Awaitable[None]], *, lock: asyncio.Lock | None = None
    ):
        self._write = write
        # Shared with whatever else must not overlap a write (a subscription, say).
        self._lock = lock or asyncio.Lock()
        self._waiting: list[tuple[Item, asyncio.Future]] = []

    async def put(self, item: Item) -> None:
        written = asyncio.get_running_loop().create_future()
        entry = (item, written)
        self._waiting.append(entry)
        try:
            async with self._lock:
                if not written.done():  # else a pipeline before this one carried it
                    await self._flush()
            await written
        except asyncio.CancelledError:
            if entry in self._waiting:
                self._waiting.remove(entry)
            # Nobody will read its outcome now; marked read, it logs nothing.
            written.add_done_callback(lambda future: future.cancelled() or future.exception())
            raise

    async def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            await self._write([item for item, _ in batch])
        except BaseException as error:
            for _, written in batch:
                if not written.done():  # a sender cancelled while waiting cancels its own
                    failure = PipelineFailed("Writing to Redis failed.")
                    failure.__cause__ = error
                    written.set_exception(failure)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        for _, written in batch:
            if not written.done():
                written.set_result(None)
