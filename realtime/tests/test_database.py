"""Database work from a socket's task (`realtime.database.db`)."""

import asyncio
import contextvars
import threading

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connections, transaction

from accounts.models import User
from realtime import database
from realtime.database import db, kept_connections, kept_connections_prepared
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


def connection_of(work):
    """Run `work` and give back what it returned, with the thread it ran on, and the
    connection object and database connection it ran on."""

    def run():
        wrapper = connections[DEFAULT_DB_ALIAS]
        return work(), threading.get_ident(), wrapper, wrapper.connection

    return run


@pytest.fixture
def kept(settings):
    """The kept connections, none yet (a change of the setting gives them back)."""
    settings.DATABASE_CONNECTIONS_KEPT = 10
    assert len(kept_connections) == 0
    return kept_connections


def met_at_once(calls: int):
    """Work that returns only once `calls` calls are in it together."""
    all_in = threading.Barrier(calls, timeout=5)

    def meet():
        users_counted()
        all_in.wait()

    return meet


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_work_runs_off_the_loop_on_a_connection_kept_for_the_next_call(rider, kept):
    count, thread, wrapper, first = await db(connection_of(users_counted))()
    *_, second = await db(connection_of(users_counted))()

    assert count == 1
    assert thread != threading.get_ident()
    assert first is not None
    assert second is first
    assert wrapper.connection is first  # kept open, not given back
    assert len(kept) == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_calls_at_once_never_share_a_connection(rider, kept):
    meet = met_at_once(2)
    (*_, one), (*_, other) = await asyncio.gather(
        db(connection_of(meet))(), db(connection_of(meet))()
    )

    assert one is not other
    assert len(kept) == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_no_more_connections_are_kept_than_allowed(rider, kept, settings):
    settings.DATABASE_CONNECTIONS_KEPT = 1
    meet = met_at_once(2)

    (_, _, one, _), (_, _, other, _) = await asyncio.gather(
        db(connection_of(meet))(), db(connection_of(meet))()
    )

    assert len(kept) == 1
    # The other went back to the pool.
    assert sorted([one.connection is None, other.connection is None]) == [False, True]


def statements_prepared_on(wrapper) -> set[str]:
    with wrapper.connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {statement for (statement,) in cursor.fetchall()}


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_a_starting_process_keeps_connections_with_the_warm_ups_statements_prepared(
    rider, kept, settings
):
    settings.DATABASE_CONNECTIONS_KEPT = 3
    connections[DEFAULT_DB_ALIAS].close_pool()  # none prepared by the tests before

    await kept_connections_prepared()

    meet = met_at_once(3)
    taken = await asyncio.gather(*(db(connection_of(meet))() for _ in range(3)))
    wrappers = {wrapper for _, _, wrapper, _ in taken}
    assert len(wrappers) == 3
    prepared = [statements_prepared_on(wrapper) for wrapper in wrappers]
    # The accept's, the pick-up's and the drop-off's, and the handshake's read, on each.
    for statements in prepared:
        assert sum(statement.startswith("WITH t AS (UPDATE") for statement in statements) == 3
        assert any('FROM "accounts_user" AS u' in statement for statement in statements)
        assert statements == prepared[0]


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_a_connection_whose_statement_failed_goes_back_to_the_pool(rider, kept):
    failed_on = []

    def fails():
        failed_on.append(connections[DEFAULT_DB_ALIAS])
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    with pytest.raises(ProgrammingError):
        await db(fails)()
    assert failed_on[0].connection is None

    count, *_ = await db(connection_of(users_counted))()
    assert count == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_a_connection_left_in_a_transaction_is_not_used_again(rider, kept):
    left = []

    def leaves_a_transaction_open():
        transaction.atomic().__enter__()
        users_counted()
        left.append(connections[DEFAULT_DB_ALIAS])

    await db(leaves_a_transaction_open)()
    assert len(kept) == 0
    assert left[0].connection is None  # given back to the pool, which rolls it back

    count, _, next_one, _ = await db(connection_of(users_counted))()
    assert next_one is not left[0]
    assert count == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_the_work_s_own_failure_keeps_its_connection(rider, kept):
    held = []

    def fails():
        users_counted()
        held.append(connections[DEFAULT_DB_ALIAS].connection)
        raise LookupError("the work's own error")

    with pytest.raises(LookupError, match="the work's own error"):
        await db(fails)()
    *_, next_one = await db(connection_of(users_counted))()

    assert next_one is held[0] is not None


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_a_connection_kept_its_time_goes_back_to_the_pool(rider, kept, monkeypatch):
    monkeypatch.setattr(database, "KEEP_SECONDS", 0.0)

    _, _, wrapper, connection = await db(connection_of(users_counted))()

    assert connection is not None
    assert wrapper.connection is None


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_kept_connections_go_back_when_the_settings_change(rider, kept, settings):
    _, _, before, _ = await db(connection_of(users_counted))()
    assert before.connection is not None

    settings.DATABASE_CONNECTIONS_KEPT = 5
    assert len(kept) == 0
    _, _, after, _ = await db(connection_of(users_counted))()

    assert after is not before
    assert before.connection is None


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


class Blocked:
    """Work that waits on its thread until released; `started()` waits for the next
    call of it to start."""

    def __init__(self):
        self.release = threading.Event()
        self.ran: list[int] = []
        # How many calls were running at once, now and at most.
        self.running = self.most_running = 0
        self._counting = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._started: asyncio.Queue[int] = asyncio.Queue()

    def __call__(self) -> None:
        with self._counting:
            self.ran.append(threading.get_ident())
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self._loop.call_soon_threadsafe(self._started.put_nowait, self.ran[-1])
        assert self.release.wait(5)  # a test that goes wrong fails rather than hangs
        with self._counting:
            self.running -= 1

    async def started(self) -> None:
        async with asyncio.timeout(5):
            await self._started.get()


async def test_worker_threads_run_each_call_off_the_loop_and_hand_back_its_outcome():
    threads = database.WorkerThreads(2)

    def fails():
        raise ProgrammingError("no such table")

    assert await threads.run(threading.get_ident) != threading.get_ident()
    assert await threads.run(lambda: "the result") == "the result"
    with pytest.raises(ProgrammingError):
        await threads.run(fails)


async def test_worker_threads_run_as_many_calls_at_once_as_they_are_and_queue_the_rest():
    threads, work = database.WorkerThreads(3), Blocked()
    calls = [threads.run(work) for _ in range(5)]
    for _ in range(3):
        await work.started()

    assert not any(call.done() for call in calls)
    work.release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(*calls)
    assert len(work.ran) == 5 and len(set(work.ran)) == 3
    assert work.most_running == 3


async def test_a_call_given_up_before_its_work_started_never_runs():
    threads, work = database.WorkerThreads(1), Blocked()
    running = threads.run(work)
    await work.started()
    given_up = threads.run(work)

    given_up.cancel()
    work.release.set()
    async with asyncio.timeout(5):
        await running
        # Queued behind the given-up call: once it is done, that one was passed over.
        await threads.run(lambda: None)

    assert len(work.ran) == 1


def test_work_whose_loop_closed_meanwhile_leaves_its_thread_serving():
    threads = database.WorkerThreads(1)
    loop = asyncio.new_event_loop()

    async def start():
        work = Blocked()
        threads.run(work)
        await work.started()
        return work

    work = loop.run_until_complete(start())
    loop.close()
    work.release.set()

    async def next_call():
        async with asyncio.timeout(5):
            return await threads.run(lambda: "served")

    assert asyncio.run(next_call()) == "served"
