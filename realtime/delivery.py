"""Addressing over the channel layer, and delivery after commit.

Recipients are channel-layer groups: one per user (all of that user's sockets, so
several devices stay in step and a reconnecting socket gets every later event; a
log-out tells them which log-in sessions ended, and only those sessions' sockets
close), and the group of drivers open for requests. Delivery is at most once: a client
that misses a message resynchronises from the snapshot it gets on connecting, or from
the REST API.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

AVAILABLE_DRIVERS = "drivers.available"
# Driver sockets that stopped being available (went offline, or took a trip) while an
# offer they heard was still open. The end of an offer made to the available drivers
# goes to both groups, so it reaches everyone who heard the offer without going to
# every driver socket of every process.
DRIVERS_STILL_OFFERED = "drivers.still-offered"
# Tells every socket that receives it to close: its user is no more.
SESSION_END = {"type": "session.end"}

# A message for a group or a single channel: ("group", name, message) or
# ("channel", name, message).
Delivery = tuple[str, str, dict]
Job = Callable[[], Awaitable[None]]


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def sessions_end(session_ids: list[str]) -> dict:
    """Tells the sockets of these log-in sessions to close, and no other. It goes to
    their user's group, which every socket of theirs is in: a group of its own for
    each session would cost each socket one more subscription (docs/benchmarks.md,
    finding 55)."""
    return {**SESSION_END, "sessions": session_ids}


def to_group(name: str, message: dict) -> Delivery:
    return ("group", name, message)


def to_channel(name: str, message: dict) -> Delivery:
    return ("channel", name, message)


async def deliver(deliveries: Iterable[Delivery]) -> None:
    layer = get_channel_layer()
    deliveries = list(deliveries)
    if len(deliveries) == 1:
        # Most deliveries are one (every position): no task to make for it.
        results = [await _result_of(_sent(layer, *deliveries[0]))]
    elif hasattr(layer, "send_all"):
        # taxi's Redis layer: one pipeline, and a message for several recipients
        # serialized once (`realtime.layers`).
        results = [await _result_of(layer.send_all(deliveries))]
    else:
        sends = (_sent(layer, *delivery) for delivery in deliveries)
        results = await asyncio.gather(*sends, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            logger.warning("A delivery failed: %r", result)


def _sent(layer, kind: str, name: str, message: dict) -> Awaitable[None]:
    return layer.group_send(name, message) if kind == "group" else layer.send(name, message)


async def _result_of(send: Awaitable[None]) -> Exception | None:
    try:
        await send
    except Exception as error:
        return error
    return None


# Work scheduled for after commit, collected instead of run when a socket's command is
# being carried out (see `after_commit`).
_collected_jobs: ContextVar[list[Job] | None] = ContextVar("collected_jobs", default=None)


def after_commit(job: Job) -> None:
    """Run the coroutine `job()` makes once the current transaction commits (at once
    outside a transaction); nothing for a change that is rolled back, and a failure of
    the job never undoes the change.

    Inside `jobs_collected()` the job is handed back to whoever runs the sync code, to
    be awaited on its own event loop: a socket's worker thread then never waits for the
    network, and the socket's events keep their order. Elsewhere (REST views, commands)
    it runs right away through `async_to_sync`.
    """

    def committed() -> None:
        jobs = _collected_jobs.get()
        if jobs is not None:
            jobs.append(job)
        else:
            async_to_sync(jobs_run)([job])

    transaction.on_commit(committed, robust=True)


def deliver_on_commit(deliveries: list[Delivery]) -> None:
    """Deliver once the current transaction commits (see `after_commit`)."""
    if deliveries:
        after_commit(lambda: deliver(deliveries))


@contextmanager
def jobs_collected() -> Iterator[list[Job]]:
    jobs: list[Job] = []
    token = _collected_jobs.set(jobs)
    try:
        yield jobs
    finally:
        _collected_jobs.reset(token)


async def jobs_run(jobs: list[Job]) -> None:
    for job in jobs:
        try:
            await job()
        except Exception:
            logger.exception("Work after a commit failed; the change itself stands")
