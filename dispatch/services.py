"""Who is offered a trip request, and who is told when the offer closes.

A request with a pick-up point is offered to the DISPATCH_DRIVERS nearest available
drivers within DISPATCH_RADIUS_M: drivers who are online, not on a trip and whose
positions keep arriving (the location index holds exactly those). While nobody is in
reach the radius widens at once by DISPATCH_RADIUS_STEP_M; once someone has been
offered it, the search waits DISPATCH_OFFER_SECONDS for an accept before widening to
further drivers. No accept at DISPATCH_MAX_RADIUS_M ends the request: no driver found.

A request without a pick-up point (the course's clients send none) goes to every
available driver, as in the course: the channel-layer group that every socket of a
driver open for requests belongs to.
"""

import time

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache

from accounts.models import User
from dispatch.location_index import location_index
from dispatch.offers import Search, offer_book
from dispatch.positions import AcceptedPosition, position_validate
from dispatch.tracking import position_share
from realtime.delivery import (
    AVAILABLE_DRIVERS,
    DRIVERS_STILL_OFFERED,
    after_commit,
    deliver,
    deliver_on_commit,
    to_group,
    user_group,
)
from trips import errors
from trips.events import TripEvent, trip_message
from trips.models import Trip
from trips.trail import trip_trail_record


def driver_online_check(driver: User) -> None:
    """Refuse to open `driver` for requests unless they are a driver allowed to drive."""
    if not driver.is_driver:
        raise errors.RoleRequired("Only drivers can go online.")
    if settings.DRIVER_APPROVAL_REQUIRED and not driver.is_approved_driver:
        raise errors.DriverNotApproved("Your account has not been approved for driving yet.")


def driver_offline_check(driver: User) -> None:
    if not driver.is_driver:
        raise errors.RoleRequired("Only drivers go online and offline.")


def trip_offer(*, trip: Trip, payload: dict, exclude: tuple[int, ...] = ()) -> None:
    """Once the transaction commits, offer the requested `trip` to drivers (never to
    those in `exclude`, such as a driver who just dropped out of it)."""
    if not trip.has_pick_up_point:
        deliver_on_commit([to_group(AVAILABLE_DRIVERS, trip_message(TripEvent.OFFERED, payload))])
        return
    search = Search(
        trip_id=str(trip.id),
        lat=trip.pick_up_lat,
        lng=trip.pick_up_lng,
        radius_m=settings.DISPATCH_RADIUS_M,
        offered=list(exclude),
    )
    after_commit(lambda: search_round(search, payload))


async def search_round(search: Search, payload: dict) -> list[int]:
    """Offer the request to the nearest drivers not offered it yet, widening at once
    while nobody is in reach, and schedule the search's next step. Returns who was
    offered it in this round."""
    while True:
        found = await location_index().drivers_nearby(
            search.lat,
            search.lng,
            search.radius_m,
            settings.DISPATCH_DRIVERS,
            exclude=search.offered,
        )
        if found or search.radius_m >= settings.DISPATCH_MAX_RADIUS_M:
            break
        search.radius_m = search_radius_widened(search.radius_m)
    drivers = [driver.driver_id for driver in found]
    search.offered.extend(drivers)
    await offer_book().search_save(search, due_at=time.time() + settings.DISPATCH_OFFER_SECONDS)
    message = trip_message(TripEvent.OFFERED, payload)
    await deliver([to_group(user_group(driver), message) for driver in drivers])
    return drivers


def search_radius_widened(radius_m: float) -> float:
    return min(radius_m + settings.DISPATCH_RADIUS_STEP_M, settings.DISPATCH_MAX_RADIUS_M)


def trip_offers_close(*, trip: Trip, payload: dict, kind: TripEvent) -> None:
    """Once the transaction commits, tell the drivers the request was offered to that it
    is gone (`kind` says why: taken, canceled), and take a driver who accepted it out of
    the available drivers."""
    if trip.driver_id is not None:
        driver_id = trip.driver_id
        after_commit(lambda: location_index().driver_remove(driver_id))
    if not trip.has_pick_up_point:
        # It went to every available driver, and no search was made for it (see
        # `trip_offer`): they all hear that it is gone, and there is no search to end.
        message = trip_message(kind, payload)
        deliver_on_commit(
            [to_group(AVAILABLE_DRIVERS, message), to_group(DRIVERS_STILL_OFFERED, message)]
        )
        return

    async def search_end() -> None:
        search = await offer_book().search_close(str(trip.id))
        if search is not None:
            message = trip_message(kind, payload)
            told = [driver for driver in search.offered if driver != trip.driver_id]
            await deliver([to_group(user_group(driver), message) for driver in told])

    after_commit(search_end)


def driver_offline(*, driver: User) -> None:
    """Take the driver out of the drivers that dispatch can find."""
    async_to_sync(location_index().driver_remove)(driver.pk)


def driver_position_accept(
    *, driver: User, report, previous: AcceptedPosition | None
) -> AcceptedPosition:
    """Check a position a driver reports against the rules and their previous one."""
    if not driver.is_driver:
        raise errors.RoleRequired("Only drivers report positions.")
    return position_validate(report=report, previous=previous, now=time.time())


# The version of the stored `AcceptedPosition`'s fields: during a rolling deploy, the
# processes of two releases each read only entries they can rebuild.
_PREVIOUS_POSITION_VERSION = 2


def _previous_position_key(driver_id: int) -> str:
    return f"driver-position:v{_PREVIOUS_POSITION_VERSION}:{driver_id}"


def driver_position_report(*, driver: User, report) -> AcceptedPosition:
    """A position reported over REST, by a driver without a socket.

    Over REST a driver is open for requests while their positions keep arriving. The
    previous position, which the rules compare with, is kept in the shared cache.
    """
    driver_online_check(driver)
    previous = cache.get(_previous_position_key(driver.pk))
    position = driver_position_accept(
        driver=driver, report=report, previous=AcceptedPosition(**previous) if previous else None
    )
    cache.set(
        _previous_position_key(driver.pk),
        position._asdict(),
        timeout=settings.DRIVER_POSITION_TTL_SECONDS,
    )
    trip = Trip.objects.filter(driver=driver, status__in=Trip.DRIVER_ACTIVE_STATUSES).first()
    if trip is not None:
        trip_trail_record(trip_id=trip.id, positions=[position])
        async_to_sync(position_share)(
            trip_id=str(trip.id), driver_id=driver.pk, rider_id=trip.rider_id, position=position
        )
    else:
        async_to_sync(location_index().driver_position_set)(
            driver.pk, position.lat, position.lng, position.received_at
        )
    return position
