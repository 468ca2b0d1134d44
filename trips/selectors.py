from django.db.models import Q, QuerySet

from accounts.models import User
from config.composed_reads import ComposedRead
from trips.models import Trip

_status = Trip._meta.get_field("status")
_user_id = User._meta.pk
_parties = {"rider": "r", "driver": "d"}
_active = ", ".join(["%s"] * len(Trip.ACTIVE_STATUSES))

_by_id = ComposedRead(Trip, alias="t", related=_parties, where="t.id = %s", params=[Trip._meta.pk])
_active_for = ComposedRead(
    Trip,
    alias="t",
    related=_parties,
    where=f"(t.rider_id = %s OR t.driver_id = %s) AND t.status IN ({_active})",
    params=[_user_id, _user_id, *[_status] * len(Trip.ACTIVE_STATUSES)],
)
_requests_of_rider = ComposedRead(
    Trip,
    alias="t",
    related=_parties,
    where=f"t.rider_id = %s AND (t.status IN ({_active}) OR t.request_id = %s)",
    params=[_user_id, *[_status] * len(Trip.ACTIVE_STATUSES), Trip._meta.get_field("request_id")],
)


def trips_visible_to(user: User) -> QuerySet[Trip]:
    """A rider sees their own trips; a driver sees trips open for requests and their own."""
    trips = Trip.objects.select_related("rider", "driver")
    if user.is_rider:
        return trips.filter(rider=user)
    if user.is_driver:
        return trips.filter(Q(status=Trip.Status.REQUESTED) | Q(driver=user))
    return trips.none()


def trip_with_parties(trip_id) -> Trip | None:
    """The trip with its rider and driver, whoever asks: every trip step reads it back
    for its event."""
    return _by_id.first(trip_id)


def trips_active_for(user: User) -> list[Trip]:
    """The trips that still concern `user` as rider or driver (at most one each), in
    no order: every socket's handshake reads them."""
    return _active_for(user.id, user.id, *Trip.ACTIVE_STATUSES)


def trips_requested_by(rider: User, request_id: str) -> list[Trip]:
    """The rider's active trip, if any, and the trip an earlier request with
    `request_id` made, if any (they may be one trip)."""
    # A blank request id stands for none: NULL equals no trip's request id.
    return _requests_of_rider(rider.id, *Trip.ACTIVE_STATUSES, request_id or None)
