"""A search for a driver goes on when the process that opened it is gone."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from accounts.services import session_tokens_issue
from dispatch.offers import RedisOfferBook, Search
from realtime.tests.servers import running_servers
from trips.models import Trip

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

PICK_UP = (52.3700, 4.8900)
DISPATCH = {
    "DISPATCH_RADIUS_M": "1000",
    "DISPATCH_RADIUS_STEP_M": "4000",
    "DISPATCH_MAX_RADIUS_M": "5000",
    "DISPATCH_OFFER_SECONDS": "1",
    "DISPATCH_SWEEP_SECONDS": "0.1",
    "POSITION_MIN_INTERVAL_SECONDS": "0",
}


async def native(server, user):
    token = (await sync_to_async(session_tokens_issue)(user=user))["access"]
    socket = await connect(server.url("ws", f"/taxi/?token={token}"), subprotocols=["taxi.v2"])
    assert json.loads(await socket.recv())["type"] == "snapshot"
    return socket


async def receive(socket, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))


async def nothing_more(socket, timeout: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(socket.recv(), timeout)
    except TimeoutError:
        return True
    return False


async def online_at(server, user, metres_north: float):
    socket = await native(server, user)
    await socket.send(json.dumps({"type": "driver.online"}))
    assert (await receive(socket))["type"] == "driver.status"
    lat = PICK_UP[0] + metres_north / 111_226
    await socket.send(
        json.dumps({"type": "driver.location", "data": {"lat": lat, "lng": PICK_UP[1]}})
    )
    await socket.send(json.dumps({"type": "ping", "data": 1}))
    assert (await receive(socket))["type"] == "pong"  # the position was handled
    return socket


@pytest.fixture
def people(make_user):
    return make_user("rider"), make_user("driver"), make_user("driver")


async def test_an_offer_expires_and_widens_after_its_process_is_killed(people, tmp_path):
    rider, near, far = people
    with running_servers(["doomed", "survivor"], tmp_path, **DISPATCH) as (doomed, survivor):
        near_socket = await online_at(survivor, near, 500)
        far_socket = await online_at(survivor, far, 3_000)
        rider_socket = await native(doomed, rider)

        await rider_socket.send(
            json.dumps(
                {
                    "type": "trip.request",
                    "data": {
                        "pick_up_address": "Dam 1",
                        "drop_off_address": "Zuid 9",
                        "pick_up_lat": PICK_UP[0],
                        "pick_up_lng": PICK_UP[1],
                    },
                }
            )
        )
        trip_id = (await receive(rider_socket))["data"]["trip"]["id"]
        first_offer = await receive(near_socket)
        assert (first_offer["type"], first_offer["data"]["trip"]["id"]) == ("trip.offered", trip_id)
        doomed.kill()

        # The survivor's sweeper takes the search over when its offer times out.
        widened = await receive(far_socket)
        assert (widened["type"], widened["data"]["trip"]["id"]) == ("trip.offered", trip_id)

        # At the widest radius, one more timeout ends it: no driver found.
        for socket in (near_socket, far_socket):
            gone = await receive(socket)
            assert (gone["type"], gone["data"]["trip"]["id"]) == ("trip.canceled", trip_id)
            assert await nothing_more(socket, timeout=0.3)  # offered once, told once
        trip = await sync_to_async(Trip.objects.get)(id=trip_id)
        assert (trip.status, trip.cancel_reason) == ("CANCELED", "no_driver_found")
        for socket in (near_socket, far_socket, rider_socket):
            await socket.close()


async def test_each_due_search_is_claimed_by_exactly_one_process(settings):
    """Many claimants at once, each with its own connection, as separate processes are."""
    book = RedisOfferBook(settings.REDIS_URL)
    trip_ids = [f"trip-{number}" for number in range(50)]
    for trip_id in trip_ids:
        await book.search_save(Search(trip_id, *PICK_UP, radius_m=1000), due_at=1)
    claimants = [RedisOfferBook(settings.REDIS_URL) for _ in range(8)]

    claims = await asyncio.gather(
        *(claimant.searches_claim_due(now=2, limit=10) for claimant in claimants for _ in range(2))
    )

    claimed = [trip_id for claim in claims for trip_id in claim]
    assert sorted(claimed) == sorted(trip_ids)  # every one claimed, none twice
    for trip_id in trip_ids:
        await book.search_close(trip_id)
