import uuid
from datetime import datetime
from typing import NamedTuple

from django.db.models import Q, QuerySet

from accounts.models import User, photo_url
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


class ListedParty(NamedTuple):
    """A trip's rider or driver as a listed trip carries them: what is public of them."""

    id: int
    username: str
    first_name: str
    last_name: str
    role: str
    photo_url: str | None


class ListedTrip(NamedTuple):
    """A trip as a list reads it: only what its representation shows, from one row."""

    id: uuid.UUID
    created: datetime
    updated: datetime
    pick_up_address: str
    drop_off_address: str
    pick_up_lat: float | None
    pick_up_lng: float | None
    drop_off_lat: float | None
    drop_off_lng: float | None
    status: str
    requested_at: datetime
    accepted_at: datetime | None
    picked_up_at: datetime | None
    completed_at: datetime | None
    canceled_at: datetime | None
    cancel_reason: str
    distance_m: float | None
    rider: ListedParty
    driver: ListedParty | None


_TRIP_COLUMNS = ListedTrip._fields[:-2]
# The photo's stored name, which `photo_url` turns into where it is served.
_PARTY_COLUMNS = (*ListedParty._fields[:-1], "photo")


class TripRows:
    """`trips` read as rows of only the columns a listed trip shows, its rider's and
    driver's joined, each made a `ListedTrip`: a page of model instances, every column
    decoded, took two fifths more CPU (docs/benchmarks.md, finding 32). A paginator
    counts it (without the joins, which the count does not need) and slices it."""

    def __init__(self, trips: QuerySet[Trip]):
        self.trips = trips

    def count(self) -> int:
        return self.trips.count()

    def __getitem__(self, page: slice) -> list[ListedTrip]:
        return _listed(self._rows()[page])

    def __iter__(self):
        return iter(_listed(self._rows()))

    def _rows(self) -> QuerySet:
        return self.trips.values_list(
            *_TRIP_COLUMNS,
            *[f"rider__{column}" for column in _PARTY_COLUMNS],
            *[f"driver__{column}" for column in _PARTY_COLUMNS],
        )


def _listed(rows) -> list[ListedTrip]:
    trip_end = len(_TRIP_COLUMNS)
    rider_end = trip_end + len(_PARTY_COLUMNS)
    return [
        ListedTrip(
            *row[:trip_end], _listed_party(row[trip_end:rider_end]), _listed_party(row[rider_end:])
        )
        for row in rows
    ]


def _listed_party(values: tuple) -> ListedParty | None:
    if values[0] is None:  # no driver: the outer join found no row
        return None
    *public, photo = values
    return ListedParty(*public, photo_url(photo))
