"""Ending a task on Python 3.11, where a cancel can be lost."""

import asyncio
import contextlib
import logging

logger = logging.getLogger(__name__)

# How long a cancelled task gets to end before it is cancelled again, and how many
# cancels it gets before its caller goes on without it.
CANCEL_AGAIN_AFTER_SECONDS = 1.0
CANCELS = 10


async def stopped(task: asyncio.Task) -> None:
    """Cancel `task` and wait for it to end, cancelling it again while it does not.

    On Python 3.11 one cancel may be lost: `asyncio.wait_for`, which redis-py runs for
    every command it writes on a connection with a socket timeout, returns the call's
    result instead of raising when the cancel comes after the call has finished and
    before the task has resumed. A loop meant to run for the process's life then runs
    on, and so did a worker stopped after a loaded benchmark run: it waited for its
    searches' sweeper until it was killed (docs/benchmarks.md, finding 99). After
    CANCELS cancels the caller goes on without the task, and it is logged.
    """
    for _ in range(CANCELS):
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=CANCEL_AGAIN_AFTER_SECONDS)
        if done:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
            return
    logger.error("%r did not end when cancelled %d times; going on without it", task, CANCELS)


def raise_if_cancelled() -> None:
    """Raise CancelledError in a task that was cancelled and is still running: a
    long-lived loop's check before it goes round again. A cancel that `wait_for` lost
    (see `stopped`) leaves the task's `cancelling()` count set, so the loop still ends
    instead of waiting for what no one will send once its event loop is closing."""
    if asyncio.current_task().cancelling():
        raise asyncio.CancelledError
