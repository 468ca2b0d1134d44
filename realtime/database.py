"""Database work from async code."""

import functools

from channels.db import database_sync_to_async
from django.db import close_old_connections, connection

from realtime.delivery import jobs_collected, jobs_run


def db(function):
    """ORM work off the event loop. On PostgreSQL it runs on the thread pool, so one
    socket's query never queues behind every other socket's; SQLite takes one writer
    at a time anyway, so there it all runs on one thread instead of failing on locks.

    The connection goes back to the pool as soon as the work is done, from inside the
    call: pool threads outlive the call, and one that kept its connection would hold
    it until the process ends. What the work scheduled for after its commit (events to
    deliver, offers to make) runs back on the event loop, before the call returns.
    """

    def run(*args, **kwargs):
        with jobs_collected() as jobs:
            try:
                return function(*args, **kwargs), jobs
            finally:
                close_old_connections()

    in_thread = database_sync_to_async(run, thread_sensitive=connection.vendor == "sqlite")

    @functools.wraps(function)
    async def call(*args, **kwargs):
        result, jobs = await in_thread(*args, **kwargs)
        await jobs_run(jobs)
        return result

    return call
