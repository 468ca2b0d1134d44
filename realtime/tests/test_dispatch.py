"""Offers to the nearest available drivers, widening, and the end of a search, through
real sockets, with each location back-end and the clock under the test's control."""

import time

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from dispatch.location_index import MemoryLocationIndex, RedisLocationIndex, location_index
from dispatch.offers import MemoryOfferBook, RedisOfferBook, offer_book
from dispatch.sweeper import searches_expire_due
from realtime.delivery import user_group
from trips import services
from trips.events import TripEvent, trip_message, trip_payload
from trips.selectors import trip_with_parties

pytestmark = pytest.mark.django_db(transaction=True)

PICK_UP = (52.3700, 4.8900)
METRES_PER_DEGREE_OF_LATITUDE = 111_226  # on the sphere Redis measures with


def north_of_pick_up(metres: float) -> tuple[float, float]:
    return PICK_UP[0] + metres / METRES_PER_DEGREE_OF_LATITUDE, PICK_UP[1]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def back_end(request, settings):
    """The location index and the offer book, of one kind or the other."""
    if request.param == "redis":
        # Earlier tests of the session may have left searches and drivers in Redis.
        client = redis.Redis.from_url(settings.REDIS_URL)
        for pattern in ("offers:*", "drivers:*"):
            for key in client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:{pattern}"):
                client.delete(key)
        client.close()
        index, book = RedisLocationIndex(settings.REDIS_URL), RedisOfferBook(settings.REDIS_URL)
    else:
        index, book = MemoryLocationIndex(), MemoryOfferBook()
    location_index.use(index)
    offer_book.use(book)
    yield request.param
    location_index.reset()
    offer_book.reset()


@pytest.fixture
def dispatch_settings(settings):
    settings.DISPATCH_DRIVERS = 3
    settings.DISPATCH_RADIUS_M = 5_000
    settings.DISPATCH_RADIUS_STEP_M = 5_000
    settings.DISPATCH_MAX_RADIUS_M = 10_000
    settings.DISPATCH_OFFER_SECONDS = 15
    settings.DRIVER_POSITION_TTL_SECONDS = 30
    settings.POSITION_MIN_INTERVAL_SECONDS = 0
    return settings


@pytest.fixture
def online_driver(open_socket, make_user):
    """A native driver socket that went online and reported a position."""

    async def connect(metres_north: float | None, *, send_position: bool = True, **fields):
        driver = await sync_to_async(make_user)("driver", **fields)
        socket = await open_socket(driver, native=True)
        await socket.send({"type": "driver.online", "request_id": "on"})
        reply = await socket.receive()
        if reply["type"] == "driver.status" and send_position and metres_north is not None:
            await report_position(socket, *north_of_pick_up(metres_north))
        socket.reply_to_online = reply
        return socket

    return connect


async def report_position(socket, lat: float, lng: float) -> None:
    await socket.send(
        {
            "type": "driver.location",
            "request_id": "where",
            "data": {"lat": lat, "lng": lng, "timestamp": timezone.now().timestamp()},
        }
    )
    # A position has no reply; a ping behind it proves it was handled.
    await socket.send({"type": "ping", "data": "after position"})
    reply = await socket.receive()
    assert reply == {"type": "pong", "data": "after position"}, reply


async def request_at_pick_up(open_socket, rider) -> tuple:
    rider_socket = await open_socket(rider, native=True)
    await rider_socket.send(
        {
            "type": "trip.request",
            "request_id": "r1",
            "data": {
                "pick_up_address": "Dam 1",
                "drop_off_address": "Zuid 9",
                "pick_up_lat": PICK_UP[0],
                "pick_up_lng": PICK_UP[1],
            },
        }
    )
    requested = await rider_socket.receive()
    assert requested["type"] == "trip.requested"
    return rider_socket, requested["data"]["trip"]


async def request_without_coordinates(open_socket, rider) -> tuple:
    rider_socket = await open_socket(rider, native=True)
    await rider_socket.send(
        {"type": "trip.request", "data": {"pick_up_address": "a", "drop_off_address": "b"}}
    )
    requested = await rider_socket.receive()
    assert requested["type"] == "trip.requested"
    return rider_socket, requested["data"]["trip"]


async def offered(socket, trip_id: str) -> bool:
    message = await socket.receive()
    return message["type"] == "trip.offered" and message["data"]["trip"]["id"] == trip_id


async def test_offered_to_the_nearest_within_the_radius_then_widened_then_no_driver(
    back_end, dispatch_settings, clock, open_socket, online_driver, rider, trip_in_db
):
    near = [await online_driver(m) for m in (100, 1_000, 4_900)]
    further = [await online_driver(m) for m in (5_100, 9_000)]
    far_away = await online_driver(20_000)

    rider_socket, trip = await request_at_pick_up(open_socket, rider)

    for socket in near:
        assert await offered(socket, trip["id"])
    for socket in [*further, far_away]:
        assert await socket.receive_nothing()

    clock.shift(14)
    assert await searches_expire_due() == []  # not yet due
    clock.shift(2)
    assert await searches_expire_due() == [trip["id"]]
    for socket in further:
        assert await offered(socket, trip["id"])
    for socket in [*near, far_away]:
        assert await socket.receive_nothing()  # never offered twice

    clock.shift(16)
    assert await searches_expire_due() == [trip["id"]]
    ended = await rider_socket.receive()
    assert ended["type"] == "trip.no_driver_found"
    assert ended["data"]["trip"]["status"] == "CANCELED"
    for socket in [*near, *further]:
        gone = await socket.receive()
        assert gone["type"] == "trip.canceled"
        assert gone["data"]["trip"]["id"] == trip["id"]
    assert await far_away.receive_nothing()
    row = await trip_in_db(trip["id"])
    assert (row.status, row.cancel_reason) == ("CANCELED", "no_driver_found")
    assert await searches_expire_due() == []  # the search is over


async def test_nobody_in_reach_widens_at_once(
    back_end, dispatch_settings, clock, open_socket, online_driver, rider
):
    beyond_first_radius = await online_driver(7_000)

    _, trip = await request_at_pick_up(open_socket, rider)

    assert await offered(beyond_first_radius, trip["id"])


async def test_an_accept_tells_the_others_it_is_gone_and_ends_the_search(
    back_end, dispatch_settings, clock, open_socket, online_driver, rider, trip_in_db
):
    first, second = await online_driver(100), await online_driver(200)
    rider_socket, trip = await request_at_pick_up(open_socket, rider)
    assert await offered(first, trip["id"])
    assert await offered(second, trip["id"])

    await second.send(
        {"type": "trip.accept", "request_id": "mine", "data": {"trip_id": trip["id"]}}
    )

    accepted = await second.receive()
    assert (accepted["type"], accepted["request_id"]) == ("trip.accepted", "mine")
    assert (await rider_socket.receive())["type"] == "trip.accepted"
    assert await first.receive() == {"type": "trip.taken", "data": {"trip_id": trip["id"]}}
    assert await second.receive_nothing()
    clock.shift(60)
    assert await searches_expire_due() == []
    assert (await trip_in_db(trip["id"])).status == "STARTED"


async def test_busy_offline_unapproved_stale_and_course_drivers_are_not_offered(
    back_end, dispatch_settings, clock, open_socket, online_driver, rider, make_user, make_trip
):
    dispatch_settings.DRIVER_APPROVAL_REQUIRED = True
    approved = {"driver_approved_at": timezone.now()}
    stale = await online_driver(300, **approved)
    clock.shift(31)  # its position is now older than the freshness limit
    available = await online_driver(500, **approved)

    busy_driver = await sync_to_async(make_user)("driver", **approved)
    await sync_to_async(make_trip)(
        await sync_to_async(make_user)("rider"), status="STARTED", driver=busy_driver
    )
    busy = await open_socket(busy_driver, native=True)
    await busy.send({"type": "driver.online"})
    assert (await busy.receive())["data"] == {"online": True}
    await report_position(busy, *north_of_pick_up(100))  # goes to its rider, not the index

    offline = await online_driver(100, **approved)
    await offline.send({"type": "driver.offline", "request_id": "off"})
    assert await offline.receive() == {
        "type": "driver.status",
        "request_id": "off",
        "data": {"online": False},
    }

    unapproved = await online_driver(100)
    assert unapproved.reply_to_online["error"]["code"] == "driver_not_approved"
    await report_position(unapproved, *north_of_pick_up(100))

    course_driver = await open_socket(await sync_to_async(make_user)("driver", **approved))

    _, trip = await request_at_pick_up(open_socket, rider)

    assert await offered(available, trip["id"])
    for socket in (stale, busy, offline, unapproved, course_driver):
        assert await socket.receive_nothing()


async def test_a_request_without_coordinates_goes_to_every_available_driver(
    back_end, dispatch_settings, open_socket, online_driver, rider, make_user
):
    positioned = await online_driver(100)
    without_position = await online_driver(None)
    course_driver = await open_socket(await sync_to_async(make_user)("driver"))

    _, trip = await request_without_coordinates(open_socket, rider)

    assert await offered(positioned, trip["id"])
    assert await offered(without_position, trip["id"])
    assert (await course_driver.receive())["data"]["id"] == trip["id"]


async def test_an_accept_of_a_request_without_coordinates_has_no_search_to_end(
    back_end, dispatch_settings, open_socket, online_driver, rider, monkeypatch
):
    """Every available driver heard it, and they all hear it is taken, without a
    search being looked for in the offer book: none was made (a round trip to Redis
    for each trip a course client requests)."""
    searches_ended = []
    book = offer_book()
    search_close = book.search_close

    async def search_close_counted(trip_id):
        searches_ended.append(trip_id)
        return await search_close(trip_id)

    monkeypatch.setattr(book, "search_close", search_close_counted)
    taker, other = await online_driver(None), await online_driver(None)
    rider_socket, trip = await request_without_coordinates(open_socket, rider)
    assert await offered(taker, trip["id"])
    assert await offered(other, trip["id"])

    await taker.send({"type": "trip.accept", "data": {"trip_id": trip["id"]}})

    assert (await taker.receive())["type"] == "trip.accepted"
    assert (await rider_socket.receive())["type"] == "trip.accepted"
    assert await other.receive() == {"type": "trip.taken", "data": {"trip_id": trip["id"]}}
    assert searches_ended == []


@pytest.mark.parametrize(
    "pick_up", [PICK_UP, (None, None)], ids=["searched-for", "offered-to-every-driver"]
)
async def test_a_driver_who_accepts_is_no_longer_found_by_dispatch(
    back_end, dispatch_settings, make_user, make_trip, rider, pick_up
):
    """However the request was offered, and with no socket of the driver's to follow
    the trip, as when they accept over REST."""
    driver = await sync_to_async(make_user)("driver")
    index = location_index()
    await index.driver_position_set(driver.id, *north_of_pick_up(100), at=time.time())
    trip = await sync_to_async(make_trip)(rider, pick_up_lat=pick_up[0], pick_up_lng=pick_up[1])

    await sync_to_async(services.trip_accept)(trip_id=trip.id, driver=driver)

    assert await index.driver_position(driver.id) is None


async def test_a_driver_s_socket_that_hears_of_their_trip_takes_them_out_of_dispatch(
    back_end, dispatch_settings, online_driver, make_trip, rider
):
    """Whoever accepted (over REST, on another socket), the accept took the driver out
    of the index as it committed; a position this socket read before it heard of the
    trip may have put them back, so hearing of it takes them out again."""
    socket = await online_driver(100)
    driver_id = socket.snapshot["user"]["id"]
    index = location_index()
    assert await index.driver_position(driver_id) is not None  # as after such a position

    def accepted_trip() -> dict:
        trip = make_trip(rider, driver_id=driver_id, status="STARTED")  # accepted
        return trip_payload(trip_with_parties(trip.id))

    trip = await sync_to_async(accepted_trip)()
    await get_channel_layer().group_send(
        user_group(driver_id), trip_message(TripEvent.ACCEPTED, trip)
    )

    heard = await socket.receive()
    assert heard["data"]["trip"]["id"] == trip["id"]
    assert await index.driver_position(driver_id) is None


async def test_a_driver_who_drops_out_is_not_offered_the_trip_again(
    back_end, dispatch_settings, clock, open_socket, online_driver, rider
):
    leaving, staying = await online_driver(100), await online_driver(300)
    rider_socket, trip = await request_at_pick_up(open_socket, rider)
    assert await offered(leaving, trip["id"])
    assert await offered(staying, trip["id"])
    await leaving.send({"type": "trip.accept", "data": {"trip_id": trip["id"]}})
    assert (await leaving.receive())["type"] == "trip.accepted"
    assert (await staying.receive())["type"] == "trip.taken"
    await rider_socket.receive()
    clock.shift(20)
    await report_position(leaving, *north_of_pick_up(50))

    await leaving.send({"type": "trip.cancel", "data": {"trip_id": trip["id"]}})

    reopened = await leaving.receive()
    assert reopened["type"] == "trip.updated"
    assert reopened["data"]["trip"]["status"] == "REQUESTED"
    assert await offered(staying, trip["id"])
    assert await leaving.receive_nothing()
