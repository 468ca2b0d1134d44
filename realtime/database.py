"""Database work from async code."""

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.dispatch import receiver

from config.hot_settings import hot_settings
from config.postgresql.kept_plans import plans_prepared
from realtime.delivery import jobs_collected, jobs_run

# How long a kept connection serves calls before it goes back to the pool, whose rules
# (its connections' lifetime, its checks of those given back) then apply to it.
KEEP_SECONDS = 60.0


class KeptConnections:
    """Django connections that `db` keeps open between calls, each used by one call at
    a time, on whichever thread runs it.

    Without them each call made a connection object in its context, checked a
    connection out of the pool, and gave it back: about 64 µs of CPU a call against 23
    (docs/benchmarks.md, finding 84). At most DATABASE_CONNECTIONS_KEPT are kept (half
    the pool), so that HTTP requests always find the pool's others; a call that finds
    none kept makes one. A connection goes back to the pool instead of being kept when
    its call left it failed or outside autocommit, when it has served KEEP_SECONDS, or
    when as many are kept already.
    """

    def __init__(self):
        self._lock = threading.Lock()
        # (connection object, its database connection when kept, that one's end)
        self._idle: list[tuple[BaseDatabaseWrapper, object, float]] = []
        self._forgotten: list[BaseDatabaseWrapper] = []

    def take(self) -> tuple[BaseDatabaseWrapper, object, float]:
        """A connection for the calling context alone, installed as its default."""
        forgotten = ()
        with self._lock:
            kept = self._idle.pop() if self._idle else None
            if self._forgotten:
                forgotten, self._forgotten = self._forgotten, []
        for wrapper in forgotten:
            wrapper.close()
        if kept is None:
            wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
            # One call at a time, each on the thread the executor picks.
            wrapper.inc_thread_sharing()
            kept = (wrapper, None, 0.0)
        connections[DEFAULT_DB_ALIAS] = kept[0]
        return kept

    def give_back(self, kept: tuple[BaseDatabaseWrapper, object, float]) -> None:
        wrapper, connection, until = kept
        now = time.monotonic()
        if wrapper.connection is not connection:
            until = now + KEEP_SECONDS  # connected in this call
        # A transaction left open would make the next call's work part of it: such a
        # connection object is not used again (Django would not reconnect it).
        keep = not wrapper.in_atomic_block
        if wrapper.connection is not None and (
            not keep or wrapper.errors_occurred or not wrapper.autocommit or now >= until
        ):
            wrapper.close()
        if keep:
            with self._lock:
                if len(self._idle) < hot_settings.DATABASE_CONNECTIONS_KEPT:
                    self._idle.append((wrapper, wrapper.connection, until))
                    return
            wrapper.close()

    def __len__(self) -> int:
        return len(self._idle)

    def prepared(self, count: int) -> None:
        """Keep `count` connections more, each with the statements of the registered
        warm-ups prepared on it (`config.postgresql.kept_plans.plans_prepared`)."""
        taken = []
        try:
            for _ in range(count):
                taken.append(self.take())  # the calling context's connection now
                plans_prepared()
        finally:
            for kept in taken:
                self.give_back(kept)

    def forget(self) -> None:
        """No call gets the connections kept so far: the next gives them back to the
        pool (from its thread, where Django lets a connection close)."""
        with self._lock:
            self._forgotten += [wrapper for wrapper, _, _ in self._idle]
            self._idle = []


kept_connections = KeptConnections()


class WorkerThreads:
    """The threads `db` runs its work on, shared by every event loop of the process.

    asyncio's default executor hands each call over through a `concurrent.futures`
    future (with a condition and a lock made for it), a work item, a semaphore of idle
    threads written in Python, and an asyncio future chained to the first: about 30 µs
    of CPU a call more than here, where the work goes on one queue with the loop's own
    future, and its thread sets the result through the loop (docs/benchmarks.md,
    finding 87). Its threads (DATABASE_THREADS) start with the first call and wait for
    work for the process's life.
    """

    def __init__(self, count: int):
        self.count = count
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._started = False
        self._starting = threading.Lock()

    def run(self, work) -> asyncio.Future:
        """`work()` on one of the threads, as a future of the running loop."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._work.put((loop, done, work))
        if not self._started:
            self._start()
        return done

    def _start(self) -> None:
        with self._starting:
            if self._started:
                return
            for number in range(self.count):
                # Daemons: a process ending does not wait for threads that wait for work.
                name = f"db-{number}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
            self._started = True

    def _serve(self) -> None:
        # One call a turn, in a frame of its own, so that nothing of it is held while
        # the thread waits for the next.
        while True:
            _carry_out(*self._work.get())


def _carry_out(loop: asyncio.AbstractEventLoop, done: asyncio.Future, work) -> None:
    if done.cancelled():
        return  # its caller gave up before it started, as with an executor
    try:
        settle, outcome = _succeeded, work()
    except BaseException as error:
        settle, outcome = _failed, error
    # A loop that has closed meanwhile refuses: nobody waits for the call any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle, done, outcome)


def _succeeded(done: asyncio.Future, result) -> None:
    if not done.done():
        done.set_result(result)


def _failed(done: asyncio.Future, error: BaseException) -> None:
    if not done.done():
        done.set_exception(error)


worker_threads = WorkerThreads(settings.DATABASE_THREADS)


@receiver(setting_changed)
def _connections_changed(setting, **kwargs):
    # Connections made for other settings (tests).
    if setting in ("DATABASES", "TIME_ZONE", "USE_TZ", "DATABASE_CONNECTIONS_KEPT"):
        kept_connections.forget()


def db(function):
    """ORM work off the event loop. On PostgreSQL it runs on `worker_threads`, so one
    socket's query never queues behind every other socket's; SQLite takes one
    writer at a time anyway, so there it all runs on one thread instead of failing on
    locks.

    On PostgreSQL the work runs on a connection kept between calls (`KeptConnections`),
    not one a thread keeps: the loop's threads outlive any call, and one that kept its
    connection would hold it until the process ends. What the work scheduled for after
    its commit (events to deliver, offers to make) runs back on the event loop, before
    the call returns.

    The work runs in a copy of the caller's context that is dropped after it. Django
    keeps some objects per context (its cache clients, for one), and asgiref carries
    the worker's context back to the caller: a socket's task would hold a set of its
    own for the socket's life (docs/benchmarks.md, finding 26).
    """

    def run(*args, **kwargs):
        with jobs_collected() as jobs:
            return function(*args, **kwargs), jobs

    def run_on_kept_connection(*args, **kwargs):
        kept = kept_connections.take()
        try:
            return run(*args, **kwargs)
        finally:
            kept_connections.give_back(kept)

    def run_and_close(*args, **kwargs):
        try:
            return run(*args, **kwargs)
        finally:
            close_old_connections()

    @functools.wraps(function)
    async def call(*args, **kwargs):
        context = contextvars.copy_context()
        if _on_sqlite():
            in_thread = database_sync_to_async(
                run_and_close, thread_sensitive=True, context=context
            )
            result, jobs = await in_thread(*args, **kwargs)
        else:
            # Straight onto worker threads, not through asgiref and Channels: their hop
            # (its bookkeeping, and stale connections closed before and after the work)
            # cost about 60 µs of CPU more a call (finding 74).
            work = functools.partial(context.run, run_on_kept_connection, *args, **kwargs)
            result, jobs = await worker_threads.run(work)
        await jobs_run(jobs)
        return result

    return call


async def kept_connections_prepared() -> None:
    """Open the connections sockets' calls keep (as many as are kept, and no more than
    there are threads to use them), each with the sockets' hottest statements
    prepared: a process runs this as it starts, so that its first steps under load do
    not all plan their statements together (docs/benchmarks.md, finding 103)."""
    if _on_sqlite():
        return
    count = min(settings.DATABASE_THREADS, hot_settings.DATABASE_CONNECTIONS_KEPT)
    context = contextvars.copy_context()
    await worker_threads.run(functools.partial(context.run, kept_connections.prepared, count))


@functools.cache
def _on_sqlite() -> bool:
    # From the settings, not from `connection`: on the event loop Django makes a
    # connection object for the calling task, and a socket's task (which wraps work
    # with `db` as it goes) would hold one for its life.
    return settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.sqlite3"
