"""The queue and event each socket holds: asyncio's behaviour, in far less memory."""

import asyncio
import gc
import tracemalloc
import weakref

import pytest

from config.lean_asyncio import LeanEvent, LeanQueue


class Item:
    """A value the tests can hold weakly."""

    def __init__(self, n: int):
        self.n = n


def bytes_each(make, count: int = 1000) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        made = [make() for _ in range(count)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert len(made) == count
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count


def test_each_takes_a_small_part_of_what_asyncio_s_own_takes():
    assert bytes_each(LeanQueue) * 10 < bytes_each(asyncio.Queue)
    assert bytes_each(LeanEvent) * 5 < bytes_each(asyncio.Event)


# --- The queue ----------------------------------------------------------------------------


async def test_items_come_out_in_the_order_they_went_in_however_many_wait():
    queue = LeanQueue()
    taken = []
    # Enough, taken in two goes, for the front of the list to be dropped in between.
    for n in range(200):
        queue.put_nowait(n)
    taken += [await queue.get() for _ in range(150)]
    for n in range(200, 260):
        queue.put_nowait(n)
    assert queue.qsize() == 110
    while not queue.empty():
        taken.append(queue.get_nowait())

    assert taken == list(range(260))
    assert queue.qsize() == 0


async def test_a_reader_waits_for_the_next_item():
    queue = LeanQueue()
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # the reader is now waiting
    assert not reader.done()

    queue.put_nowait("position")

    assert await reader == "position"
    assert queue.empty()


async def cancelled_while_waiting(wait) -> None:
    waiting = asyncio.create_task(wait)
    await asyncio.sleep(0)  # now waiting
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_reader_cancelled_while_waiting_loses_nothing():
    queue = LeanQueue()
    await cancelled_while_waiting(queue.get())

    queue.put_nowait("event")

    assert await queue.get() == "event"


async def test_a_second_reader_at_once_is_refused():
    queue = LeanQueue()
    first = asyncio.create_task(queue.get())
    await asyncio.sleep(0)

    with pytest.raises(RuntimeError):
        await queue.get()

    queue.put_nowait(1)
    assert await first == 1


def test_an_empty_queue_has_nothing_to_give_at_once():
    with pytest.raises(asyncio.QueueEmpty):
        LeanQueue().get_nowait()


@pytest.mark.parametrize("count", [1, 2, 200])
def test_a_taken_item_is_no_longer_kept_by_the_queue(count):
    queue = LeanQueue()
    for n in range(count):
        queue.put_nowait(Item(n))
    # Each way an item leaves: the queue emptied, the front dropped, or neither.
    taken = [weakref.ref(queue.get_nowait()) for _ in range(max(1, count - 1))]
    gc.collect()

    assert [ref() for ref in taken] == [None] * len(taken)


# --- The event ----------------------------------------------------------------------------


async def test_waiting_on_a_set_event_returns_at_once():
    event = LeanEvent()
    event.set()

    assert event.is_set()
    assert await event.wait() is True


async def test_setting_the_event_wakes_every_waiter_and_clearing_it_makes_them_wait():
    event = LeanEvent()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)

    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]

    event.clear()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not event.is_set()
    assert not late.done()
    event.set()
    assert await late is True


async def test_a_waiter_cancelled_is_forgotten():
    event = LeanEvent()
    await cancelled_while_waiting(event.wait())

    assert event._waiters == []
    event.set()
    assert await event.wait() is True
