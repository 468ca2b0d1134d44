"""Bounds on what one user or one socket may cost the server."""

import time
from collections import Counter


class MessageRate:
    """A token bucket: `per_second` messages a second on average, `burst` at once."""

    # Every socket has one: slots keep it a fifth the size of an instance with a dict.
    __slots__ = ("burst", "per_second", "refilled_at", "tokens")

    def __init__(self, per_second: float, burst: int):
        self.per_second = per_second
        self.burst = burst
        self.tokens = float(burst)
        self.refilled_at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled_at) * self.per_second)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class SocketCount:
    """Open sockets per user in this process.

    Counting per process needs no shared state that a crashed process could leave
    wrong; with N workers a user can hold up to N times the limit, which still bounds
    what one user can take.
    """

    def __init__(self):
        self.open = Counter()

    def admit(self, user_id: int, limit: int) -> bool:
        if self.open[user_id] >= limit:
            return False
        self.open[user_id] += 1
        return True

    def release(self, user_id: int) -> None:
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]


sockets_per_user = SocketCount()
