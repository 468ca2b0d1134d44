import asyncio
import weakref

from redis.asyncio import BlockingConnectionPool, Redis

# A burst of sockets waits for a connection rather than failing with "Too many
# connections" (redis-py's plain pool stops at 100 and raises).
POOL_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10


class PerLoopRedis:
    """An asyncio Redis client for each running event loop.

    A client belongs to the loop it was made on. In an ASGI server that is one client;
    sync code calling through `async_to_sync` outside a server runs each call on a new
    loop, and so gets a client (and a connection) per call, closed only when the
    garbage collector takes the loop; such code should batch its calls inside one
    function passed to `async_to_sync`.
    """

    def __init__(self, url: str):
        self._url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = (
            weakref.WeakKeyDictionary()
        )

    def client(self) -> Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=POOL_CONNECTIONS,
                timeout=POOL_WAIT_SECONDS,
                socket_timeout=POOL_WAIT_SECONDS,
            )
            client = self._clients[loop] = Redis(connection_pool=pool)
        return client

    async def close(self) -> None:
        """Closes the connections of the running event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
