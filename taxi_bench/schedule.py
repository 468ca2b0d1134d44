"""Open-loop schedules: send times fixed before the run, whatever the server does.

A closed loop (send, wait for the answer, send again) slows down with the server and so
hides its stalls; here every send time is known in advance, a late send is still
measured from its scheduled time, and the generator never waits for answers to decide
when to send.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


async def sleep_until(when: float) -> None:
    """Sleep until the monotonic clock reads `when` (not at all if it is past)."""
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


@dataclass(frozen=True)
class Timeline:
    """Evenly spaced send times for one sender: `start + offset + n * period`.

    `offset` staggers senders sharing a period, so that K senders at one message a
    second each make K evenly spread messages a second rather than K-message bursts.
    Bounded twice: at most `count` sends, none scheduled at or after `end`.
    """

    start: float
    period: float
    end: float
    offset: float = 0.0
    count: int | None = None

    def times(self) -> list[float]:
        first = self.start + self.offset
        if first >= self.end:
            return []
        slots = int((self.end - first) / self.period - 1e-9) + 1
        if self.count is not None:
            slots = min(slots, self.count)
        return [first + n * self.period for n in range(slots)]

    async def ticks(self) -> AsyncIterator[tuple[int, float]]:
        """Each (sequence number, scheduled time), yielded once that time has come."""
        for sequence, scheduled_at in enumerate(self.times()):
            await sleep_until(scheduled_at)
            yield sequence, scheduled_at

    def each(self, call: Callable[[int, float], None]) -> asyncio.Future[None]:
        """Call `call(sequence number, scheduled time)` once that time has come, for
        each time, from the event loop's timers; the future is done after the last
        call, or failed with the first exception a call raises. Cancelling it stops
        the calls.

        For senders whose send waits for nothing: thousands of them, a task each and a
        sleep a tick (`ticks`), cost the generator 17 µs of CPU a tick, and timers 8
        (docs/benchmarks.md, finding 92).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        times = self.times()

        def at(sequence: int) -> None:
            loop.call_later(max(0.0, times[sequence] - time.monotonic()), tick, sequence)

        def tick(sequence: int) -> None:
            if done.done():
                return
            try:
                call(sequence, times[sequence])
            except Exception as error:
                done.set_exception(error)
                return
            if sequence + 1 < len(times):
                at(sequence + 1)
            else:
                done.set_result(None)

        if times:
            at(0)
        else:
            done.set_result(None)
        return done


def staggered(index: int, senders: int, period: float) -> float:
    """The offset of sender `index` of `senders` that share a `period`."""
    return period * index / senders if senders else 0.0
