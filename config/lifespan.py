import asyncio
import gc
import logging

from config.tasks import stopped

# Young objects allocated between two collections of the youngest generation (Python's
# default: 700), and how many collections of each generation make one of the next (10
# and 10). See `garbage_collector_tuned`.
COLLECTION_THRESHOLDS = (50_000, 5, 400)

logger = logging.getLogger(__name__)


class Lifespan:
    """What every server process does as it starts: it opens the database connections
    its sockets keep, their statements prepared; and what it runs beside its requests:
    the sweeper that moves on driver searches whose offers timed out (any process may
    take any search), and, with Redis, the following of log-outs
    (`accounts.revocations`)."""

    async def __call__(self, scope, receive, send):
        from accounts.sessions import revoked_sessions
        from dispatch.sweeper import searches_sweep_forever

        running = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await database_ready()
                garbage_collector_tuned()
                running.append(asyncio.create_task(searches_sweep_forever()))
                if (revoked := revoked_sessions()) is not None:
                    running.append(asyncio.create_task(revoked.follow()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in running:
                    await stopped(task)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def database_ready() -> None:
    """The connections sockets' calls keep, opened and their statements prepared
    before the process serves. A database that cannot be reached yet is no reason not
    to start: each connection is then opened, and each statement prepared, on first
    use."""
    from realtime.database import kept_connections_prepared

    try:
        await kept_connections_prepared()
    except Exception:
        logger.warning("Preparing the database's connections failed", exc_info=True)


def garbage_collector_tuned() -> None:
    """Keep the garbage collector's full collections rare and short.

    A full collection stops the event loop while it walks every object the process
    holds; with a thousand sockets a process it took 120 to 150 ms, and each one showed
    as a burst of late events lasting up to a second (docs/benchmarks.md). What the
    process loaded to start (Django, the URL conf, the models) lives as long as the
    process, so it is frozen out of every later collection; and the thresholds are
    raised so that full collections come about a tenth as often.

    The middle generation is collected at every fifth young collection: it then holds
    what survived five of them, not twenty, and its pauses, the longest of a busy
    process, are shorter: at 4 000 tracked drivers the longest 85-131 ms against
    116-164, in dispatch 24-41 ms against 50-74 (docs/benchmarks.md, finding 36). A full
    collection still waits for as many young ones as before (5 x 400 = 20 x 100).

    A young collection is not short either: every socket waits on objects it made for
    its last message (a coroutine, a future, the parser's generator), young and alive,
    so each young collection walks them all, some 60 000 in a process holding 5 000
    sockets, 20-70 ms. Their number does not grow with the threshold, only what was
    allocated besides them, so a young collection waits for 50 000 allocations more than
    frees: in tracking at 5 000 drivers, one a minute instead of one every five seconds
    (finding 52). HTTP requests, which would fill it with their reference cycles and
    make each young collection five times longer, leave none (`config.http`, finding
    53).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTION_THRESHOLDS)
