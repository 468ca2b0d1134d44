"""Both back-ends of the location index, held to the same cases."""

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio
from asgiref.sync import async_to_sync
from django.conf import settings

from dispatch.location_index import (
    IndexedPosition,
    LocationIndex,
    MemoryLocationIndex,
    NearbyDriver,
    RedisLocationIndex,
    location_index,
    redis_location_keys,
)
from dispatch.redis_clients import PipelineFailed

TTL = 30
# Any fixed moment will do; the clock is frozen there by each test that needs time.
T0 = 1_800_000_000.0
# Lisbon, Praça do Comércio.
CENTRE = (38.7075, -9.1364)
# An independent spherical model to place the layout: the radius the index works with
# is Redis's, and the test states it rather than borrowing it from the code under test.
REDIS_EARTH_RADIUS_M = 6_372_797.560856


def point_at(origin: tuple[float, float], metres: float, bearing: float) -> tuple[float, float]:
    """The point `metres` from `origin` along the great circle leaving it at `bearing`."""
    lat1, lng1 = map(math.radians, origin)
    angle = metres / REDIS_EARTH_RADIUS_M
    theta = math.radians(bearing)
    lat2 = math.asin(
        math.sin(lat1) * math.cos(angle) + math.cos(lat1) * math.sin(angle) * math.cos(theta)
    )
    lng2 = lng1 + math.atan2(
        math.sin(theta) * math.sin(angle) * math.cos(lat1),
        math.cos(angle) - math.sin(lat1) * math.sin(lat2),
    )
    lng = (math.degrees(lng2) + 180) % 360 - 180
    return math.degrees(lat2), lng


# driver id: (metres from CENTRE, bearing in degrees)
LAYOUT = {
    11: (100, 0),
    12: (1_000, 90),
    13: (4_900, 200),
    14: (5_100, 45),
    15: (20_000, 300),
}


@dataclass
class Backend:
    index: LocationIndex
    # Whether the back-end's storage still holds anything of a driver.
    holds: Callable[[int], Awaitable[bool]]


@pytest.fixture(autouse=True)
def _ttl(settings):
    settings.DRIVER_POSITION_TTL_SECONDS = TTL


@pytest.fixture
def frozen_clock(time_machine):
    time_machine.move_to(T0, tick=False)
    return time_machine


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request):
    if request.param == "memory":
        index = MemoryLocationIndex()

        async def holds(driver_id: int) -> bool:
            in_cells = any(driver_id in drivers for drivers in index._cells.values())
            return driver_id in index._drivers or in_cells

        yield Backend(index, holds)
        return

    index = RedisLocationIndex(settings.REDIS_URL)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    positions, seen = redis_location_keys()

    async def holds(driver_id: int) -> bool:
        [point] = await client.geopos(positions, driver_id)
        return point is not None or await client.zscore(seen, driver_id) is not None

    yield Backend(index, holds)
    await client.delete(positions, seen)
    await client.aclose()
    await index.close()


async def layout_place(index: LocationIndex, at: float = T0) -> None:
    for driver_id, (metres, bearing) in LAYOUT.items():
        await index.driver_position_set(driver_id, *point_at(CENTRE, metres, bearing), at=at)


async def crowd_place(index: LocationIndex, around: tuple[float, float]) -> None:
    """Sixty drivers 30 to 65 km away, each in a cell of its own or nearly, so that the
    in-process index has more occupied cells than a 5 km search touches (and reads the
    search's cells rather than the occupied ones)."""
    for n in range(60):
        point = point_at(around, 30_000 + 600 * n, bearing=6 * n)
        await index.driver_position_set(1_000 + n, *point, at=T0)


CROWDED = pytest.mark.parametrize("crowded", [False, True], ids=["alone", "in_a_crowd"])


def ids(nearby: list[NearbyDriver]) -> list[int]:
    return [driver.driver_id for driver in nearby]


class TestNearby:
    @CROWDED
    async def test_nearest_first_within_the_radius_with_their_distances(
        self, backend, frozen_clock, crowded
    ):
        await layout_place(backend.index)
        if crowded:
            await crowd_place(backend.index, CENTRE)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=10)

        assert ids(nearby) == [11, 12, 13]
        for driver in nearby:
            assert driver.distance_m == pytest.approx(LAYOUT[driver.driver_id][0], abs=1)

    async def test_a_wider_radius_reaches_further(self, backend, frozen_clock):
        await layout_place(backend.index)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=25_000, count=10)

        assert ids(nearby) == [11, 12, 13, 14, 15]
        assert nearby[-1].distance_m == pytest.approx(20_000, abs=1)

    async def test_count_limits_the_answer_to_the_nearest(self, backend, frozen_clock):
        await layout_place(backend.index)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=25_000, count=2)

        assert ids(nearby) == [11, 12]

    async def test_excluded_drivers_are_skipped_and_count_still_filled(self, backend, frozen_clock):
        await layout_place(backend.index)

        nearby = await backend.index.drivers_nearby(
            *CENTRE, radius_m=25_000, count=3, exclude={11, 13, 999}
        )

        assert ids(nearby) == [12, 14, 15]

    async def test_empty_index_finds_no_one(self, backend, frozen_clock):
        assert await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=10) == []

    @CROWDED
    async def test_a_driver_on_the_other_side_of_the_antimeridian_is_found(
        self, backend, frozen_clock, crowded
    ):
        east, west = (-16.5, 179.99), (-16.5, -179.99)
        if crowded:
            await crowd_place(backend.index, east)
        await backend.index.driver_position_set(1, *east, at=T0)
        await backend.index.driver_position_set(2, *west, at=T0)
        await backend.index.driver_position_set(3, -16.5, 0.0, at=T0)
        expected = 0.02 * math.pi / 180 * REDIS_EARTH_RADIUS_M * math.cos(math.radians(16.5))

        from_east = await backend.index.drivers_nearby(*east, radius_m=5_000, count=10)
        from_west = await backend.index.drivers_nearby(*west, radius_m=5_000, count=10)

        assert ids(from_east) == [1, 2]
        assert ids(from_west) == [2, 1]
        assert from_east[1].distance_m == pytest.approx(expected, abs=1)
        assert from_west[1].distance_m == pytest.approx(expected, abs=1)

    async def test_near_the_northern_limit_a_search_spans_many_degrees_of_longitude(
        self, backend, frozen_clock
    ):
        centre = (85.0, 10.0)
        # driver id: (metres from centre, bearing); at 85°N, 15 km east is 1.5° of longitude.
        near_the_limit = {1: (5_000, 0), 2: (9_000, 180), 3: (14_000, 90), 4: (14_500, 270)}
        for driver_id, (metres, bearing) in near_the_limit.items():
            await backend.index.driver_position_set(
                driver_id, *point_at(centre, metres, bearing), at=T0
            )
        await backend.index.driver_position_set(5, *point_at(centre, 16_000, 90), at=T0)

        nearby = await backend.index.drivers_nearby(*centre, radius_m=15_000, count=10)

        assert ids(nearby) == [1, 2, 3, 4]
        for driver in nearby:
            assert driver.distance_m == pytest.approx(near_the_limit[driver.driver_id][0], abs=1)

    async def test_points_redis_cannot_hold_are_refused(self, backend, frozen_clock):
        with pytest.raises(ValueError):
            await backend.index.driver_position_set(1, 85.1, 0.0, at=T0)
        with pytest.raises(ValueError):
            await backend.index.driver_position_set(1, 0.0, 180.5, at=T0)
        with pytest.raises(ValueError):
            await backend.index.drivers_nearby(-85.1, 0.0, radius_m=5_000, count=10)
        with pytest.raises(ValueError):
            await backend.index.drivers_nearby(0.0, math.nan, radius_m=5_000, count=10)
        with pytest.raises(ValueError):
            await backend.index.drivers_nearby(*CENTRE, radius_m=0, count=10)
        with pytest.raises(ValueError):
            await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=0)


class TestPositions:
    async def test_a_position_is_kept_with_its_time(self, backend, frozen_clock):
        point = point_at(CENTRE, 300, 10)
        await backend.index.driver_position_set(7, *point, at=T0 - 2.5)

        position = await backend.index.driver_position(7)

        assert position == IndexedPosition(
            pytest.approx(point[0], abs=1e-5), pytest.approx(point[1], abs=1e-5), T0 - 2.5
        )
        assert await backend.index.driver_position(8) is None

    async def test_an_update_moves_the_driver(self, backend, frozen_clock):
        await layout_place(backend.index)
        far_away = point_at(CENTRE, 20_000, 300)

        await backend.index.driver_position_set(15, *point_at(CENTRE, 50, 180), at=T0 + 1)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=10)
        assert ids(nearby) == [15, 11, 12, 13]
        assert nearby[0].distance_m == pytest.approx(50, abs=1)
        assert await backend.index.drivers_nearby(*far_away, radius_m=1_000, count=10) == []
        assert (await backend.index.driver_position(15)).at == T0 + 1

    async def test_a_removed_driver_is_gone(self, backend, frozen_clock):
        await layout_place(backend.index)

        await backend.index.driver_remove(11)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=10)
        assert ids(nearby) == [12, 13]
        assert await backend.index.driver_position(11) is None
        assert not await backend.holds(11)

    async def test_removing_an_unknown_driver_changes_nothing(self, backend, frozen_clock):
        await layout_place(backend.index)

        await backend.index.driver_remove(999)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=10)
        assert ids(nearby) == [11, 12, 13]


class TestFreshness:
    async def test_a_driver_just_under_the_ttl_is_found(self, backend, frozen_clock):
        await layout_place(backend.index)

        frozen_clock.shift(TTL - 0.1)

        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=5_000, count=10)
        assert ids(nearby) == [11, 12, 13]
        assert (await backend.index.driver_position(11)).at == T0

    async def test_a_stale_driver_is_not_found_and_is_forgotten(self, backend, frozen_clock):
        await layout_place(backend.index)
        await backend.index.driver_position_set(12, *point_at(CENTRE, 1_000, 90), at=T0 + 5)

        frozen_clock.shift(TTL + 0.1)

        assert await backend.index.driver_position(11) is None
        nearby = await backend.index.drivers_nearby(*CENTRE, radius_m=25_000, count=10)
        assert ids(nearby) == [12]
        for stale in (11, 13, 14, 15):
            assert not await backend.holds(stale)
        assert await backend.holds(12)

    async def test_a_write_forgets_stale_drivers_without_a_search(self, backend, frozen_clock):
        await backend.index.driver_position_set(1, *CENTRE, at=T0)

        frozen_clock.shift(TTL + 0.1)
        await backend.index.driver_position_set(2, *CENTRE, at=T0 + TTL + 0.1)

        assert not await backend.holds(1)
        assert await backend.holds(2)

    async def test_a_driver_who_keeps_reporting_stays(self, backend, frozen_clock):
        await backend.index.driver_position_set(1, *CENTRE, at=T0)
        frozen_clock.shift(20)
        await backend.index.driver_position_set(1, *CENTRE, at=T0 + 20)

        frozen_clock.shift(20)
        assert ids(await backend.index.drivers_nearby(*CENTRE, radius_m=100, count=1)) == [1]

        frozen_clock.shift(TTL)
        assert await backend.index.drivers_nearby(*CENTRE, radius_m=100, count=1) == []
        assert not await backend.holds(1)

    async def test_a_driver_back_after_a_removal_is_fresh_from_the_return(
        self, backend, frozen_clock
    ):
        await backend.index.driver_position_set(1, *CENTRE, at=T0)
        await backend.index.driver_remove(1)
        frozen_clock.shift(20)
        await backend.index.driver_position_set(1, *CENTRE, at=T0 + 20)

        frozen_clock.shift(20)
        assert ids(await backend.index.drivers_nearby(*CENTRE, radius_m=100, count=1)) == [1]

        frozen_clock.shift(TTL)
        assert await backend.index.driver_position(1) is None
        await backend.index.drivers_nearby(*CENTRE, radius_m=100, count=1)
        assert not await backend.holds(1)

    async def test_an_older_report_than_the_last_counts_from_its_own_time(
        self, backend, frozen_clock
    ):
        await backend.index.driver_position_set(1, *CENTRE, at=T0)
        await backend.index.driver_position_set(1, *CENTRE, at=T0 - 20)

        frozen_clock.shift(TTL - 10)

        assert await backend.index.drivers_nearby(*CENTRE, radius_m=100, count=1) == []
        assert not await backend.holds(1)


async def test_changes_made_at_once_take_effect_in_the_order_made(backend, frozen_clock):
    # The Redis index writes what queued behind one round trip in the next pipeline: a
    # driver who left must not be put back by a position sent just before they left.
    here = CENTRE
    await asyncio.gather(
        backend.index.driver_position_set(4, *here, at=T0),  # out while the rest queue
        backend.index.driver_position_set(1, *here, at=T0),
        backend.index.driver_remove(1),
        backend.index.driver_remove(2),
        backend.index.driver_position_set(2, *here, at=T0),
        backend.index.driver_position_set(3, *here, at=T0),
        backend.index.driver_position_set(3, *point_at(here, 50, 0), at=T0 + 1),
    )

    assert not await backend.holds(1)
    assert (await backend.index.driver_position(2)).at == T0
    assert (await backend.index.driver_position(3)).at == T0 + 1


def test_sync_callers_go_through_async_to_sync(backend, frozen_clock):
    # Each async_to_sync call outside a server runs on a loop of its own: a Redis
    # client kept from the first call would be bound to a closed loop by the second.
    async_to_sync(layout_place)(backend.index)

    nearby = async_to_sync(backend.index.drivers_nearby)(*CENTRE, radius_m=5_000, count=10)

    assert ids(nearby) == [11, 12, 13]


@pytest.mark.parametrize("hemisphere", [1, -1], ids=["north", "south"])
async def test_in_process_a_search_over_the_pole_finds_drivers_on_the_far_side(
    frozen_clock, hemisphere
):
    # Redis GEO misses these (on Redis 7.0, even with a 3000 km radius): its search
    # box does not wrap over a pole. No dispatch radius comes near that: from any
    # latitude the index can hold, the nearest pole is over 550 km away.
    index = MemoryLocationIndex()
    await index.driver_position_set(1, hemisphere * 85.0, 180.0, at=T0)
    # From 84° on the prime meridian over the pole to 85° on the 180th: 11 degrees.
    over_the_pole = 11 * math.pi / 180 * REDIS_EARTH_RADIUS_M

    nearby = await index.drivers_nearby(hemisphere * 84.0, 0.0, radius_m=1_300_000, count=10)

    assert ids(nearby) == [1]
    assert nearby[0].distance_m == pytest.approx(over_the_pole, abs=1)


async def test_in_process_expiry_queue_keeps_one_entry_per_driver(frozen_clock):
    # A driver who goes busy and comes back leaves an entry behind each time; once
    # those come due, only the driver's current entry may remain.
    index = MemoryLocationIndex()
    for second in range(10):
        frozen_clock.move_to(T0 + second, tick=False)
        await index.driver_position_set(1, *CENTRE, at=T0 + second)
        await index.driver_remove(1)
    await index.driver_position_set(1, *CENTRE, at=T0 + 10)

    frozen_clock.move_to(T0 + 10 + TTL, tick=False)
    await index.driver_position_set(1, *CENTRE, at=T0 + 10 + TTL)
    frozen_clock.shift(TTL)
    await index.driver_position_set(2, *CENTRE, at=T0 + 10 + 2 * TTL)

    assert sorted(driver for _, driver in index._expiry) == [1, 2]
    assert ids(await index.drivers_nearby(*CENTRE, radius_m=100, count=10)) == [1, 2]


@pytest.mark.redis
async def test_redis_forgets_more_stale_drivers_than_lua_can_unpack_at_once(frozen_clock):
    index = RedisLocationIndex(settings.REDIS_URL)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    positions, seen = redis_location_keys()
    stale = range(1, 9_001)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for driver_id in stale:
                pipe.geoadd(positions, (CENTRE[1], CENTRE[0], driver_id))
                pipe.zadd(seen, {driver_id: T0})
            await pipe.execute()
        frozen_clock.shift(TTL + 1)

        await index.driver_position_set(0, *CENTRE, at=T0 + TTL + 1)

        assert await client.zcard(positions) == 1
        assert await client.zrange(seen, 0, -1) == [b"0"]
    finally:
        await client.delete(positions, seen)
        await client.aclose()
        await index.close()


@pytest.mark.redis
async def test_redis_a_change_redis_refuses_fails_its_sender(frozen_clock):
    index = RedisLocationIndex(settings.REDIS_URL)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    positions, seen = redis_location_keys()
    await client.set(seen, "not a sorted set")
    try:
        with pytest.raises(PipelineFailed) as failed:
            await index.driver_position_set(1, *CENTRE, at=T0)

        assert "WRONGTYPE" in str(failed.value.__cause__)
    finally:
        await client.delete(positions, seen)
        await client.aclose()
        await index.close()


class TestTheProcessIndex:
    @pytest.fixture(autouse=True)
    def _fresh(self):
        location_index.reset()
        yield
        location_index.reset()

    def test_in_process_without_redis_and_one_per_process(self, settings):
        settings.REDIS_URL = ""

        assert isinstance(location_index(), MemoryLocationIndex)
        assert location_index() is location_index()

    def test_redis_when_redis_url_is_set(self, settings):
        settings.REDIS_URL = "redis://127.0.0.1:6379/0"

        assert isinstance(location_index(), RedisLocationIndex)

    def test_changing_redis_url_replaces_the_index(self, settings):
        settings.REDIS_URL = ""
        before = location_index()

        settings.REDIS_URL = "redis://127.0.0.1:6379/0"

        assert isinstance(location_index(), RedisLocationIndex)
        assert location_index() is not before

    async def test_a_reset_gives_an_empty_index(self, settings, frozen_clock):
        settings.REDIS_URL = ""
        await location_index().driver_position_set(1, *CENTRE, at=T0)

        location_index.reset()

        assert await location_index().driver_position(1) is None
