"""Database work from a socket's task (`realtime.database.db`)."""

import asyncio
import contextvars
import threading

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from accounts.models import User
from realtime.database import db
from realtime.delivery import after_commit


def users_counted() -> int:
    cache.get("anything")
    return User.objects.count()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_s_task_holds_no_connection_or_cache_objects(rider):
    async def socket_task():
        # As a consumer does, wrapping its work as it goes.
        counts = [await db(users_counted)(), await db(users_counted)()]
        # Held by the task, they would live as long as its socket.
        return counts, connections.all(initialized_only=True), caches.all(initialized_only=True)

    # A socket's task starts with nothing of Django's in its context.
    counts, *held = await asyncio.create_task(socket_task(), context=contextvars.Context())

    assert counts == [1, 1]
    assert held == [[], []]


# Django's tests keep SQLite's in-memory database open, and its work runs on one thread.
postgresql_only = pytest.mark.skipif(
    settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.sqlite3",
    reason="on SQLite, connections are kept and calls run one at a time",
)


def thread_s_connection_after(work):
    """Run `work` and give back what it returned, with the thread it ran on and that
    thread's connection object (Django keeps one a thread)."""

    def run():
        return work(), threading.get_ident(), connections[DEFAULT_DB_ALIAS]

    return run


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_work_runs_off_the_loop_and_gives_its_connection_back(rider):
    count, thread, connection = await db(thread_s_connection_after(users_counted))()

    assert count == 1
    assert thread != threading.get_ident()
    assert connection.connection is None  # back to the pool, not held by the thread


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_failed_work_raises_in_the_caller_and_gives_its_connection_back(rider):
    def fails():
        users_counted()
        raise LookupError("the work's own error")

    held = []

    def run():
        held.append(connections[DEFAULT_DB_ALIAS])
        fails()

    with pytest.raises(LookupError, match="the work's own error"):
        await db(run)()
    assert held[0].connection is None


@pytest.mark.django_db(transaction=True)
async def test_work_for_after_the_commit_runs_on_the_loop_before_the_call_returns(rider):
    ran_on = []

    async def job():
        ran_on.append(threading.get_ident())

    def change():
        with transaction.atomic():
            User.objects.filter(id=rider.id).update(first_name="Renamed")
            after_commit(job)
            assert ran_on == []  # not before the commit
        return "changed"

    assert await db(change)() == "changed"
    assert ran_on == [threading.get_ident()]


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_calls_run_at_once_on_postgresql(rider):
    # Each waits for the other: one queued behind the other breaks the barrier.
    both = threading.Barrier(2, timeout=5)

    def meet():
        users_counted()
        return both.wait()

    arrivals = await asyncio.gather(db(meet)(), db(meet)())

    assert sorted(arrivals) == [0, 1]
