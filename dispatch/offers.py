"""Open searches for a driver: who a request has been offered to, and when to widen.

A search is kept in an offer book shared by every process (Redis with REDIS_URL, this
process's memory otherwise) together with the time it falls due. Any process may claim
a due search, and exactly one does: claiming removes it from the schedule atomically.
So a search outlives the process that opened it, and two processes never both widen it.
"""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

from django.conf import settings

from dispatch.backends import ProcessWide
from dispatch.redis_clients import PerLoopRedis


@dataclass
class Search:
    trip_id: str
    lat: float
    lng: float
    radius_m: float
    # Every driver offered this request so far, nearest first by round: never twice.
    offered: list[int] = field(default_factory=list)


class OfferBook(Protocol):
    async def search_save(self, search: Search, *, due_at: float) -> None: ...

    async def search_get(self, trip_id: str) -> Search | None: ...

    async def search_close(self, trip_id: str) -> Search | None: ...

    async def searches_claim_due(self, now: float, limit: int) -> list[str]: ...


class MemoryOfferBook:
    """One process's searches (the embedded default has one process)."""

    def __init__(self):
        self._searches: dict[str, Search] = {}
        self._due: dict[str, float] = {}

    async def search_save(self, search: Search, *, due_at: float) -> None:
        self._searches[search.trip_id] = search
        self._due[search.trip_id] = due_at

    async def search_get(self, trip_id: str) -> Search | None:
        return self._searches.get(trip_id)

    async def search_close(self, trip_id: str) -> Search | None:
        self._due.pop(trip_id, None)
        return self._searches.pop(trip_id, None)

    async def searches_claim_due(self, now: float, limit: int) -> list[str]:
        due = sorted((at, trip_id) for trip_id, at in self._due.items() if at <= now)
        claimed = [trip_id for _, trip_id in due[:limit]]
        for trip_id in claimed:
            del self._due[trip_id]
        return claimed


# Takes the due searches off the schedule in one step, so each goes to one claimant.
_CLAIM_DUE_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
"""


class RedisOfferBook:
    """Searches in Redis: one string per search, and a sorted set of when each is due.

    A search's key expires a while after it falls due, so a book whose processes all
    died does not keep it forever.
    """

    def __init__(self, url: str):
        self._redis_clients = PerLoopRedis(url)

    @staticmethod
    def _search_key(trip_id: str) -> str:
        return f"{settings.REDIS_KEY_PREFIX}:offers:search:{trip_id}"

    @staticmethod
    def _due_key() -> str:
        return f"{settings.REDIS_KEY_PREFIX}:offers:due"

    async def search_save(self, search: Search, *, due_at: float) -> None:
        keep_seconds = max(60, int(due_at - time.time()) + 600)
        async with self._redis_clients.client().pipeline(transaction=True) as pipe:
            pipe.set(self._search_key(search.trip_id), json.dumps(asdict(search)), ex=keep_seconds)
            pipe.zadd(self._due_key(), {search.trip_id: due_at})
            await pipe.execute()

    async def search_get(self, trip_id: str) -> Search | None:
        stored = await self._redis_clients.client().get(self._search_key(trip_id))
        return Search(**json.loads(stored)) if stored else None

    async def search_close(self, trip_id: str) -> Search | None:
        async with self._redis_clients.client().pipeline(transaction=True) as pipe:
            pipe.getdel(self._search_key(trip_id))
            pipe.zrem(self._due_key(), trip_id)
            stored, _ = await pipe.execute()
        return Search(**json.loads(stored)) if stored else None

    async def searches_claim_due(self, now: float, limit: int) -> list[str]:
        claimed = await self._redis_clients.client().eval(
            _CLAIM_DUE_SCRIPT, 1, self._due_key(), now, limit
        )
        return [trip_id.decode() for trip_id in claimed]


offer_book = ProcessWide[OfferBook](redis=RedisOfferBook, memory=MemoryOfferBook)
