"""The last known position of each available driver, and who is near a point.

Two back-ends answer the same questions: `RedisLocationIndex` (Redis GEO, shared by every
process) when `REDIS_URL` is set, and `MemoryLocationIndex` (one process) otherwise;
`location_index()` returns the one this process is configured for. The interface is
async because its callers are WebSocket consumers; sync code calls it through asgiref's
`async_to_sync`.

Freshness: a position counts for DRIVER_POSITION_TTL_SECONDS after the server accepted it
(`at`). A driver whose latest position is older is never returned, and is forgotten by
the next write or search without a sweep over all drivers: both back-ends keep drivers
ordered by last-seen time, so finding the stale ones costs a lookup plus their number.
The time comes from the index's `clock` (`time.time` unless given), read at each call.

Coordinates must be ones Redis GEO can hold (|lat| <= MAX_LATITUDE, |lng| <= 180); the
index raises ValueError for any other point, in both back-ends, because reports are
validated before they get here (`dispatch.positions`) and an out-of-range point is a
bug in the caller.
"""

import heapq
import math
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from dispatch.backends import ProcessWide
from dispatch.geo import EARTH_RADIUS_M, MAX_LATITUDE, distance_m
from dispatch.redis_clients import Command, CommandWriter, Outbox, PerLoop, PerLoopRedis

Clock = Callable[[], float]
# A driver's new position (lat, lng, at), or None for their leaving the index.
Change = tuple[int, tuple[float, float, float] | None]


@dataclass(frozen=True, slots=True)
class NearbyDriver:
    driver_id: int
    distance_m: float


@dataclass(frozen=True, slots=True)
class IndexedPosition:
    lat: float
    lng: float
    # When the server accepted the position (unix seconds).
    at: float


class LocationIndex(Protocol):
    async def driver_position_set(
        self, driver_id: int, lat: float, lng: float, at: float
    ) -> None: ...

    async def driver_remove(self, driver_id: int) -> None: ...

    async def driver_position(self, driver_id: int) -> IndexedPosition | None: ...

    async def drivers_nearby(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        count: int,
        exclude: Collection[int] = (),
    ) -> list[NearbyDriver]: ...


def _point_check(lat: float, lng: float) -> None:
    # Written so that NaN fails too.
    if not (-MAX_LATITUDE <= lat <= MAX_LATITUDE and -180 <= lng <= 180):
        raise ValueError(f"The location index cannot hold the point ({lat}, {lng}).")


def _search_check(lat: float, lng: float, radius_m: float, count: int) -> None:
    _point_check(lat, lng)
    if not radius_m > 0:
        raise ValueError(f"A search radius must be positive, not {radius_m}.")
    if count < 1:
        raise ValueError(f"A search must ask for at least one driver, not {count}.")


def _freshness_cutoff(clock: Clock) -> float:
    """Positions accepted before this time are stale."""
    return clock() - settings.DRIVER_POSITION_TTL_SECONDS


# --- In-process back-end -----------------------------------------------------------------

# The in-process index files drivers in cells of 1/16 of a degree (about 7 km north-south,
# the order of the dispatch radius, so a search reads a handful of cells). A power of two
# keeps the cell arithmetic exact in binary floating point.
CELLS_PER_DEGREE = 16
_ROWS = 180 * CELLS_PER_DEGREE
_COLUMNS = 360 * CELLS_PER_DEGREE
# Widens a search's bounding box by about 6 mm, so that rounding in the box arithmetic
# never leaves out a driver sitting on the search circle itself.
_ROUNDING_MARGIN_RADIANS = 1e-9

Cell = tuple[int, int]


def _row(lat: float) -> int:
    return math.floor((lat + 90) * CELLS_PER_DEGREE)


def _column_unwrapped(lng: float) -> int:
    """The column of a longitude, counted on past ±180° instead of wrapping around."""
    return math.floor((lng + 180) * CELLS_PER_DEGREE)


def _cell(lat: float, lng: float) -> Cell:
    # 180° and -180° are one meridian, and land in one column.
    return _row(lat), _column_unwrapped(lng) % _COLUMNS


@dataclass(frozen=True, slots=True)
class _CellSpan:
    """The cells of a bounding box: whole rows, and `columns` columns eastwards from
    `first_column`, wrapping around at the antimeridian."""

    rows: range
    first_column: int
    columns: int

    def __len__(self) -> int:
        return len(self.rows) * self.columns

    def __iter__(self) -> Iterator[Cell]:
        for row in self.rows:
            for offset in range(self.columns):
                yield row, (self.first_column + offset) % _COLUMNS

    def __contains__(self, cell: Cell) -> bool:
        row, column = cell
        return row in self.rows and (column - self.first_column) % _COLUMNS < self.columns


def _cells_within(lat: float, lng: float, radius_m: float) -> _CellSpan:
    """The cells of the bounding box of the circle of `radius_m` around a point.

    On a sphere the circle (of angular radius r) reaches r north and south of its
    centre, and asin(sin r / cos lat) east and west, as long as it does not reach a
    pole; a circle around a pole takes in every longitude.
    """
    angle = radius_m / EARTH_RADIUS_M + _ROUNDING_MARGIN_RADIANS
    south, north = lat - math.degrees(angle), lat + math.degrees(angle)
    rows = range(max(_row(south), 0), min(_row(north), _ROWS - 1) + 1)
    if north >= 90 or south <= -90:
        return _CellSpan(rows, first_column=0, columns=_COLUMNS)
    # min() keeps rounding from pushing the sine past 1 for a circle that all but
    # touches a pole.
    spread = min(math.sin(angle) / math.cos(math.radians(lat)), 1.0)
    half_width = math.degrees(math.asin(spread))
    first = _column_unwrapped(lng - half_width)
    last = _column_unwrapped(lng + half_width)
    return _CellSpan(rows, first_column=first % _COLUMNS, columns=min(last - first + 1, _COLUMNS))


@dataclass(slots=True)
class _Tracked:
    lat: float
    lng: float
    at: float
    cell: Cell
    # The time this driver is filed under in the expiry queue; never later than `at`.
    expires_from: float


class MemoryLocationIndex:
    """The location index of a single process (no Redis): a grid of cells for the
    search, and an expiry queue for freshness.

    The expiry queue is a heap of (time, driver) entries, one current entry per driver,
    filed under a time no later than the driver's last `at`; the driver's own record
    says which entry is current (`expires_from`), so entries left behind by a removal or
    by a report older than the one before are skipped when they come due. Forgetting
    stale drivers pops the entries older than the cutoff: a driver whose position is
    stale is forgotten; one who reported since is filed again under its latest time. So
    each driver costs at most one heap operation per TTL, and the heap holds one entry
    per driver plus those left behind within the last TTL.

    Not thread-safe: calls must not overlap across threads, which holds for ASGI code
    (one event loop, where `async_to_sync` from its sync parts lands too) and for a
    single-threaded sync program.
    """

    def __init__(self, *, clock: Clock = time.time):
        self._clock = clock
        self._drivers: dict[int, _Tracked] = {}
        self._cells: dict[Cell, set[int]] = {}
        self._expiry: list[tuple[float, int]] = []

    async def driver_position_set(self, driver_id: int, lat: float, lng: float, at: float) -> None:
        _point_check(lat, lng)
        previous = self._drivers.get(driver_id)
        if previous is not None:
            self._cell_leave(driver_id, previous.cell)
        if previous is None or at < previous.expires_from:
            heapq.heappush(self._expiry, (at, driver_id))
            expires_from = at
        else:
            expires_from = previous.expires_from
        cell = _cell(lat, lng)
        self._cells.setdefault(cell, set()).add(driver_id)
        self._drivers[driver_id] = _Tracked(lat, lng, at, cell, expires_from)
        self._forget_stale()

    async def driver_remove(self, driver_id: int) -> None:
        self._forget(driver_id)

    async def driver_position(self, driver_id: int) -> IndexedPosition | None:
        self._forget_stale()
        tracked = self._drivers.get(driver_id)
        if tracked is None:
            return None
        return IndexedPosition(tracked.lat, tracked.lng, tracked.at)

    async def drivers_nearby(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        count: int,
        exclude: Collection[int] = (),
    ) -> list[NearbyDriver]:
        _search_check(lat, lng, radius_m, count)
        self._forget_stale()
        span = _cells_within(lat, lng, radius_m)
        # A wide search over a sparse index reads the occupied cells instead of every
        # cell the circle touches, whichever are fewer.
        if len(span) <= len(self._cells):
            candidates = (driver for cell in span for driver in self._cells.get(cell, ()))
        else:
            candidates = (
                driver
                for cell, drivers in self._cells.items()
                if cell in span
                for driver in drivers
            )
        excluded = set(exclude)
        within: list[tuple[float, int]] = []
        for driver_id in candidates:
            if driver_id in excluded:
                continue
            tracked = self._drivers[driver_id]
            distance = distance_m(lat, lng, tracked.lat, tracked.lng)
            if distance <= radius_m:
                within.append((distance, driver_id))
        return [
            NearbyDriver(driver_id, distance)
            for distance, driver_id in heapq.nsmallest(count, within)
        ]

    def _forget_stale(self) -> None:
        cutoff = _freshness_cutoff(self._clock)
        while self._expiry and self._expiry[0][0] < cutoff:
            filed_at, driver_id = heapq.heappop(self._expiry)
            tracked = self._drivers.get(driver_id)
            if tracked is None or tracked.expires_from != filed_at:
                continue  # left behind by a removal, or superseded by a newer entry
            if tracked.at < cutoff:
                self._forget(driver_id)
            else:
                heapq.heappush(self._expiry, (tracked.at, driver_id))
                tracked.expires_from = tracked.at

    def _forget(self, driver_id: int) -> None:
        tracked = self._drivers.pop(driver_id, None)
        if tracked is not None:
            self._cell_leave(driver_id, tracked.cell)

    def _cell_leave(self, driver_id: int, cell: Cell) -> None:
        drivers = self._cells[cell]
        drivers.discard(driver_id)
        if not drivers:
            del self._cells[cell]


# --- Redis back-end ----------------------------------------------------------------------

# Removes the drivers last seen before ARGV[1] from both keys, atomically, so that a
# driver who reports while it runs is never half-removed. KEYS[1] is the GEO key,
# KEYS[2] the last-seen sorted set. unpack() is bounded by Lua's C stack (about 8000
# values), hence the batches.
_FORGET_STALE_SCRIPT = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for first = 1, #stale, 1000 do
  local last = math.min(first + 999, #stale)
  redis.call('ZREM', KEYS[1], unpack(stale, first, last))
  redis.call('ZREM', KEYS[2], unpack(stale, first, last))
end
return #stale
"""


def redis_location_keys() -> tuple[str, str]:
    """The GEO key of driver positions and the sorted set of when each was accepted.

    Read at each call, because tests give every session its own REDIS_KEY_PREFIX.
    """
    prefix = settings.REDIS_KEY_PREFIX
    return f"{prefix}:drivers:positions", f"{prefix}:drivers:seen"


class RedisLocationIndex:
    """The location index shared by every process: a GEO key of positions and a sorted
    set of the times they were accepted, keyed by driver id.

    Every write and search first removes, in the same transaction, the drivers whose
    last-seen time is before the freshness cutoff; the sorted set finds them with one
    range query, however many drivers there are.

    See `PerLoopRedis` for how clients follow event loops.
    """

    def __init__(self, url: str, *, clock: Clock = time.time):
        self._redis_clients = PerLoopRedis(url)
        self._clock = clock
        # Every online driver reports about once a second: their positions, and their
        # leaving, go in pipelines, in the order they came (see `Outbox`).
        self._changes = PerLoop(lambda: Outbox[Change](self._changes_apply))
        # Only the loop's outbox writes with its writer, one batch at a time.
        self._writers = PerLoop(CommandWriter)

    async def driver_position_set(self, driver_id: int, lat: float, lng: float, at: float) -> None:
        _point_check(lat, lng)
        await self._changes.get().put((driver_id, (lat, lng, at)))

    async def driver_remove(self, driver_id: int) -> None:
        await self._changes.get().put((driver_id, None))

    async def _changes_apply(self, changes: list[Change]) -> None:
        positions, seen = redis_location_keys()
        commands: list[Command] = [(b"MULTI",)]
        for driver_id, position in changes:
            if position is None:
                commands += [(b"ZREM", positions, driver_id), (b"ZREM", seen, driver_id)]
            else:
                lat, lng, at = position
                commands += [
                    (b"GEOADD", positions, lng, lat, driver_id),
                    (b"ZADD", seen, at, driver_id),
                ]
        commands += [self._forget_stale_command(), (b"EXEC",)]
        await self._writers.get().replies(self._redis(), commands)

    async def driver_position(self, driver_id: int) -> IndexedPosition | None:
        positions, seen = redis_location_keys()
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.zscore(seen, driver_id)
            pipe.geopos(positions, driver_id)
            at, [point] = await pipe.execute()
        if at is None or at < _freshness_cutoff(self._clock):
            return None
        lng, lat = point
        return IndexedPosition(lat, lng, at)

    async def drivers_nearby(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        count: int,
        exclude: Collection[int] = (),
    ) -> list[NearbyDriver]:
        _search_check(lat, lng, radius_m, count)
        excluded = set(exclude)
        positions, _ = redis_location_keys()
        async with self._redis().pipeline(transaction=True) as pipe:
            self._forget_stale(pipe)
            # Excluded drivers can take at most len(excluded) places of the answer.
            pipe.geosearch(
                positions,
                longitude=lng,
                latitude=lat,
                radius=radius_m,
                unit="m",
                sort="ASC",
                count=count + len(excluded),
                withdist=True,
            )
            _, found = await pipe.execute()
        nearby = [
            NearbyDriver(int(member), distance)
            for member, distance in found
            if int(member) not in excluded
        ]
        return nearby[:count]

    async def close(self) -> None:
        """Closes the connections of the running event loop."""
        await self._redis_clients.close()

    def _redis(self) -> Redis:
        return self._redis_clients.client()

    def _forget_stale(self, pipe: Pipeline) -> None:
        pipe.eval(*self._forget_stale_arguments())

    def _forget_stale_command(self) -> Command:
        return (b"EVAL", *self._forget_stale_arguments())

    def _forget_stale_arguments(self) -> tuple[str, int, str, str, float]:
        keys = redis_location_keys()
        return _FORGET_STALE_SCRIPT, len(keys), *keys, _freshness_cutoff(self._clock)


# --- The process's index -----------------------------------------------------------------

location_index = ProcessWide[LocationIndex](redis=RedisLocationIndex, memory=MemoryLocationIndex)
