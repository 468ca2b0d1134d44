import contextvars
from concurrent.futures import ThreadPoolExecutor

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


def client_seen_from_a_new_context():
    return contextvars.Context().run(lambda: cache._cache.get_client(write=True))


def test_every_cache_call_of_the_process_uses_one_redis_client():
    first, second = client_seen_from_a_new_context(), client_seen_from_a_new_context()

    assert first is second
    assert first.connection_pool is pool_seen_from_a_new_context()


def test_the_kept_client_reads_and_writes_from_many_threads():
    def round_trip(n: int):
        cache.set(f"kept-client-test:{n}", {"n": n}, timeout=30)
        return cache.get(f"kept-client-test:{n}")

    with ThreadPoolExecutor(max_workers=8) as threads:
        read = list(threads.map(round_trip, range(64)))

    assert read == [{"n": n} for n in range(64)]
    cache.delete_many([f"kept-client-test:{n}" for n in range(64)])
