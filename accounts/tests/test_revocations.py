"""Each server process's copy of the logged-out sessions: trusted only while it follows
Redis, and never missing a log-out it could have heard of.

Two `RevokedSessions` over one Redis stand for two server processes."""

import asyncio
import contextlib
import time

import pytest
import redis
from django.conf import settings

from accounts import revocations
from accounts.revocations import RevokedSessions, RevokedSessionsCopy

LATER = 900.0  # seconds a test's log-out lasts


async def within_seconds(awaitable, seconds: float = 10):
    """What the tests wait for happens at once or not at all: never wait forever."""
    return await asyncio.wait_for(awaitable, seconds)


@pytest.fixture
def clock(monkeypatch):
    """The copy's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(revocations.time, "monotonic", lambda: now[0])
    return now


def test_a_copy_is_trusted_only_once_loaded_and_while_heard_from(clock):
    copy = RevokedSessionsCopy()
    assert not copy.trusted()

    copy.load({"a": time.time() + LATER})
    assert copy.trusted() and copy.revoked("a") and not copy.revoked("b")

    clock[0] += revocations.HEARD_WITHIN - 0.1
    assert copy.trusted()
    clock[0] += 0.2
    assert not copy.trusted()
    copy.heard()
    assert copy.trusted()

    copy.lost()
    assert not copy.trusted()


def test_an_expired_log_out_no_longer_counts():
    copy = RevokedSessionsCopy()
    copy.load({"old": time.time() - 1, "new": time.time() + LATER})

    assert not copy.revoked("old") and copy.revoked("new")
    copy.expired_dropped()
    assert not copy.revoked("old") and copy.revoked("new")


@pytest.mark.redis
class TestFollowing:
    @pytest.fixture
    def processes(self, request):
        prefix = f"{settings.REDIS_KEY_PREFIX}:{request.node.name}"
        return [RevokedSessions(settings.REDIS_URL, prefix) for _ in range(2)]

    @pytest.fixture
    def following(self):
        tasks = []

        async def follow(process: RevokedSessions):
            tasks.append(asyncio.create_task(process.follow()))
            await within_seconds(process.until_trusted())

        yield follow
        for task in tasks:
            task.cancel()

    @staticmethod
    def redis_unreachable(process: RevokedSessions, monkeypatch):
        """Any read of Redis by `process` now fails: an answer must come from its copy."""

        def unreachable(*args, **kwargs):
            raise AssertionError("read Redis")

        monkeypatch.setattr(process._redis, "zscore", unreachable)

    async def test_a_log_out_is_known_at_once_where_it_was_made(
        self, processes, following, monkeypatch
    ):
        here, _ = processes
        await following(here)

        # On the event loop, so that its follower cannot hear of it before the check.
        here.revoke("sid-1", time.time() + LATER)
        self.redis_unreachable(here, monkeypatch)

        assert here.is_revoked("sid-1") and not here.is_revoked("sid-2")

    async def test_another_process_hears_of_a_log_out(self, processes, following, monkeypatch):
        here, there = processes
        await following(there)

        await asyncio.to_thread(here.revoke, "sid-1", time.time() + LATER)
        await within_seconds(there.caught_up())

        self.redis_unreachable(there, monkeypatch)
        assert there.is_revoked("sid-1") and not there.is_revoked("sid-2")

    async def test_log_outs_made_before_a_process_follows_are_loaded(
        self, processes, following, monkeypatch
    ):
        here, there = processes
        await asyncio.to_thread(here.revoke, "sid-1", time.time() + LATER)
        await asyncio.to_thread(here.revoke, "gone", time.time() - 1)

        await following(there)

        self.redis_unreachable(there, monkeypatch)
        assert there.is_revoked("sid-1") and not there.is_revoked("gone")

    async def test_a_process_that_lost_its_subscription_reads_redis_until_it_is_back(
        self, processes, following, monkeypatch
    ):
        here, there = processes
        monkeypatch.setattr(revocations, "RESUBSCRIBE_AFTER", 0.05)
        await following(there)
        retried = asyncio.Event()
        resubscribe = revocations.asyncio.sleep

        async def held_back(seconds):
            retried.set()
            await hold.wait()
            await resubscribe(seconds)

        hold = asyncio.Event()
        monkeypatch.setattr(revocations.asyncio, "sleep", held_back)

        killed = _subscription_killed(there)
        await within_seconds(there.until_trusted(False))
        await within_seconds(retried.wait())
        # While it is not subscribed, a log-out made elsewhere is read from Redis.
        await asyncio.to_thread(here.revoke, "sid-1", time.time() + LATER)
        assert killed and await asyncio.to_thread(there.is_revoked, "sid-1")

        hold.set()
        await within_seconds(there.until_trusted())

        # Back, it has loaded what it missed.
        self.redis_unreachable(there, monkeypatch)
        assert there.is_revoked("sid-1")


def _subscription_killed(process: RevokedSessions) -> int:
    """Close the process's subscription from Redis's side, as a restart would."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    with contextlib.closing(client):
        ids = [c["id"] for c in client.client_list() if c["name"] == process.client_name]
        for id_ in ids:
            client.client_kill_filter(_id=id_)
    return len(ids)
