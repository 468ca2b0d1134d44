import contextvars

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.redis


def pool_seen_from_a_new_context():
    def pool():
        cache.get("anything")  # makes the context's cache object and its client
        return cache._cache._get_connection_pool(write=False)

    return contextvars.Context().run(pool)


def test_every_context_shares_one_redis_connection_pool():
    # Each request and each socket runs in an async context of its own, and Django gives
    # each context its own cache object.
    first, second = pool_seen_from_a_new_context(), pool_seen_from_a_new_context()

    assert first is second
