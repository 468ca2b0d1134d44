import threading

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


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
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
