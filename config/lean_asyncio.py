"""asyncio's Queue and Event, in a socket's worth of memory.

Every open socket holds two queues (uvicorn's of its client's messages, channels_redis's
of its channel's) and an event (uvicorn's "writable"). asyncio's own allocate their
deques up front, four to an empty `Queue` (3.3 KB) and one to an `Event` (0.9 KB): at
20 000 sockets, 150 MB of empty buffers (docs/benchmarks.md, finding 51). These take
120 bytes each: they keep what they hold in a list, whose buffer is freed whenever it
empties, and make a waiter's future only while someone waits.
"""

import asyncio
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Taken items are dropped from the front of the list once this many have gathered
# there (and at least as many remain), so a long queue read slowly stays linear.
_FRONT_KEPT = 64


class LeanQueue(Generic[Item]):
    """An unbounded first-in, first-out queue with one reader at a time: the part of
    `asyncio.Queue` that uvicorn and channels_redis use for a socket."""

    __slots__ = ("_first", "_items", "_reader")

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._first = 0  # the next item's index; those before it are taken
        self._reader: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) - self._first

    def empty(self) -> bool:
        return self._first == len(self._items)

    def put_nowait(self, item: Item) -> None:
        self._items.append(item)
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def get(self) -> Item:
        while self.empty():
            if self._reader is not None:
                raise RuntimeError("A LeanQueue has one reader at a time.")
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self.get_nowait()

    def get_nowait(self) -> Item:
        if self.empty():
            raise asyncio.QueueEmpty
        item = self._items[self._first]
        self._first += 1
        if self._first == len(self._items):
            self._items.clear()
            self._first = 0
        elif self._first >= _FRONT_KEPT and self._first * 2 >= len(self._items):
            del self._items[: self._first]
            self._first = 0
        else:
            self._items[self._first - 1] = None  # no longer kept alive by the queue
        return item


class LeanEvent:
    """`asyncio.Event`: a flag that tasks can wait to see set."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:  # cancelled before it was set
                self._waiters.remove(waiter)
        return True
