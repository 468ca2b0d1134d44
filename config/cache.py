import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


class KeptClientsRedisCacheClient(RedisCacheClient):
    """Django's client for Redis, keeping one redis-py client for each connection pool.

    Django's own makes a redis-py client for every cache call, and redis-py 8's
    constructor (some forty settings, a lock, a callback table) cost half of a
    request's session-revocation check (docs/benchmarks.md, finding 38). A client takes its
    connection from the pool for each command, so threads can share one.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kept: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._kept.get(id(pool))
        if client is None:
            # Two threads may both make one; either serves, and the pool outlives both.
            client = self._kept[id(pool)] = self._client(connection_pool=pool)
        return client


class SharedPoolRedisCache(RedisCache):
    """Django's Redis cache, with one connection pool per process instead of one per
    cache object.

    Django makes a cache object for every async context, so under ASGI each request and
    each socket would build a pool and open a Redis connection of its own, never to be
    closed; thousands of sockets then exhaust the Redis server's clients. redis-py's
    pools are thread-safe, so every cache object of the process can share one.
    """

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = KeptClientsRedisCacheClient(self._servers, **self._options)
        return client
