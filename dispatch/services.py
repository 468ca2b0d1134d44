"""Who is offered a trip request, and who is told when the offer closes.

Every driver open for requests is offered every request: drivers whose socket says they
are (a course-protocol socket, or a native socket that went online) and who are not on a
trip belong to the channel-layer group of available drivers.
"""

from django.conf import settings

from accounts.models import User
from realtime.delivery import AVAILABLE_DRIVERS, deliver_on_commit, to_group
from trips import errors
from trips.events import Origin, TripEvent, trip_message
from trips.models import Trip


def trip_offer(*, trip: Trip, payload: dict, origin: Origin | None = None) -> None:
    deliver_on_commit([to_group(AVAILABLE_DRIVERS, trip_message(TripEvent.OFFERED, payload))])


def trip_offers_close(*, trip: Trip, payload: dict, kind: TripEvent) -> None:
    """Tell the drivers the request was offered to that it is gone (`kind` says why)."""
    deliver_on_commit([to_group(AVAILABLE_DRIVERS, trip_message(kind, payload))])


def driver_online_check(driver: User) -> None:
    """Refuse to open `driver` for requests unless they are a driver allowed to drive."""
    if not driver.is_driver:
        raise errors.RoleRequired("Only drivers can go online.")
    if settings.DRIVER_APPROVAL_REQUIRED and not driver.is_approved_driver:
        raise errors.DriverNotApproved("Your account has not been approved for driving yet.")
