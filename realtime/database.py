"""Database work from async code."""

import asyncio
import contextvars
import functools

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections

from realtime.delivery import jobs_collected, jobs_run


def db(function):
    """ORM work off the event loop. On PostgreSQL it runs on the loop's thread pool, so
    one socket's query never queues behind every other socket's; SQLite takes one
    writer at a time anyway, so there it all runs on one thread instead of failing on
    locks.

    The connection goes back to the pool as soon as the work is done, from inside the
    call: pool threads outlive the call, and one that kept its connection would hold
    it until the process ends. What the work scheduled for after its commit (events to
    deliver, offers to make) runs back on the event loop, before the call returns.

    The work runs in a copy of the caller's context that is dropped after it. Django
    keeps some objects per context (its cache clients, for one), and asgiref carries
    the worker's context back to the caller: a socket's task would hold a set of its
    own for the socket's life (docs/benchmarks.md, finding 26).
    """

    def run(*args, **kwargs):
        with jobs_collected() as jobs:
            try:
                return function(*args, **kwargs), jobs
            finally:
                close_old_connections()

    @functools.wraps(function)
    async def call(*args, **kwargs):
        context = contextvars.copy_context()
        if _on_sqlite():
            in_thread = database_sync_to_async(run, thread_sensitive=True, context=context)
            result, jobs = await in_thread(*args, **kwargs)
        else:
            # Straight onto the pool, not through asgiref and Channels: their hop (its
            # bookkeeping, and stale connections closed before and after the work as
            # well as by `run`) cost about 60 µs of CPU more a call (finding 74).
            work = functools.partial(context.run, run, *args, **kwargs)
            result, jobs = await asyncio.get_running_loop().run_in_executor(None, work)
        await jobs_run(jobs)
        return result

    return call


@functools.cache
def _on_sqlite() -> bool:
    # From the settings, not from `connection`: on the event loop Django makes a
    # connection object for the calling task, and a socket's task (which wraps work
    # with `db` as it goes) would hold one for its life.
    return settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.sqlite3"
