"""Moving searches on when their offers time out, in whichever process gets to them."""

import asyncio
import logging
import time

from django.conf import settings

from dispatch.offers import offer_book
from dispatch.services import search_radius_widened, search_round
from realtime.database import db
from trips import services as trip_services
from trips.events import trip_payload
from trips.models import Trip
from trips.selectors import trip_with_parties

logger = logging.getLogger(__name__)


def _requested_trip_payload(trip_id: str) -> dict | None:
    trip = trip_with_parties(trip_id)
    return trip_payload(trip) if trip is not None and trip.status == Trip.Status.REQUESTED else None


async def searches_expire_due(now: float | None = None) -> list[str]:
    """Move on every search whose offers have timed out by `now`: widen it to drivers
    further away, or, at the widest radius, end the request with no driver found.
    Returns the trips whose searches this call moved on."""
    book = offer_book()
    claimed = await book.searches_claim_due(time.time() if now is None else now, limit=100)
    for trip_id in claimed:
        search = await book.search_get(trip_id)
        if search is None:
            continue  # accepted or canceled since it fell due
        if search.radius_m >= settings.DISPATCH_MAX_RADIUS_M:
            await book.search_close(trip_id)
            await db(trip_services.trip_no_driver_found)(trip_id=trip_id, offered=search.offered)
            continue
        payload = await db(_requested_trip_payload)(trip_id)
        if payload is None:
            await book.search_close(trip_id)
            continue
        search.radius_m = search_radius_widened(search.radius_m)
        await search_round(search, payload)
    return claimed


async def searches_sweep_forever() -> None:
    """Run in every server process: any of them can move on any search."""
    while True:
        try:
            await searches_expire_due()
        except Exception:
            logger.exception("Moving on the due driver searches failed")
        await asyncio.sleep(settings.DISPATCH_SWEEP_SECONDS)
