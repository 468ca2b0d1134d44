"""The trip lifecycle: every change to a trip goes through one of these functions.

    REQUESTED --accept--> STARTED --advance--> IN_PROGRESS --advance--> COMPLETED
    REQUESTED or STARTED --rider cancels--> CANCELED
    STARTED --driver cancels--> REQUESTED (offered to other drivers again)
    REQUESTED --dispatch finds no driver--> CANCELED

Races are settled by the database: a request is an insert that the partial unique
constraints may refuse (they keep riders and drivers to one active trip, and a rider's
request id to one trip), and every other change a conditional UPDATE (or a row lock) on
the state it starts from, so of two drivers accepting the same trip exactly one updates
a row. A request, an accept, an advance or a rider's cancel of an open request holds,
in the same statement, only while the user making it still has the rights the caller
read them with. Events are delivered only after the change commits.
"""

import functools
import uuid
from contextlib import contextmanager, suppress
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.utils import timezone

from accounts.models import User
from accounts.selectors import (
    RIGHTS_PARAMS,
    rights_held,
    rights_held_values,
    rights_still_held,
)
from config.composed_reads import ComposedRead, prepared
from config.postgresql.kept_plans import plan_kept, warmed_by
from dispatch import services as dispatch
from realtime.delivery import deliver_on_commit, to_group, user_group
from trips import errors
from trips.events import (
    Origin,
    TripEvent,
    to_origin_only,
    to_parties,
    trip_message,
    trip_payload,
)
from trips.models import Trip
from trips.selectors import (
    TRIP_PARTIES,
    trip_with_parties,
    trips_requested_by,
    trips_visible_to,
)
from trips.trail import trail_distance_m, trail_distance_sql

Status = Trip.Status

# For each status a driver may advance a trip to, the status it must be in.
ADVANCE_FROM = {Status.IN_PROGRESS: Status.STARTED, Status.COMPLETED: Status.IN_PROGRESS}
ADVANCE_STAMP = {Status.IN_PROGRESS: "picked_up_at", Status.COMPLETED: "completed_at"}


def _visible_trip(user: User, trip_id) -> Trip | None:
    return trips_visible_to(user).filter(id=trip_id).first()


def _trip_changed(
    trip_id, *, acting: User, expected: dict, changes: dict, trail_measured: bool = False
) -> Trip | None:
    """Make `changes` to the trip if it is still as `expected` (each a field's name, or
    a foreign key's column, to a value that is not None) and `acting`, the user making
    them, still has the rights the caller read them with; give the trip back with its
    parties as `trip_with_parties` reads it. None, and nothing changed, if not.

    With `trail_measured` the change sets the trip's distance to its trail's length as
    well: on PostgreSQL measured in the change's own statement (`trail_distance_sql`),
    elsewhere read before it.

    The user's rights are tested in the change's own statement, so a socket need not
    read its user before each step (docs/benchmarks.md, finding 45). On PostgreSQL the
    change and the read are one statement too, atomic without a transaction around it:
    a trip step then makes two round trips to PostgreSQL fewer (its `BEGIN` and
    `COMMIT`) and one read fewer (finding 42). Elsewhere the change, then the read, in
    one transaction.
    """
    in_statement = trail_measured and connection.vendor == "postgresql"
    if trail_measured and not in_statement:
        changes = {**changes, "distance_m": trail_distance_m(trip_id)}
    change = _trip_change(connection.vendor, tuple(expected), tuple(changes), in_statement)
    values = (
        *changes.values(),
        *([trip_id] if in_statement else []),
        trip_id,
        *expected.values(),
        *rights_held_values(acting),
    )
    if connection.vendor != "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(change.update, prepared(change.params, values))
            return trip_with_parties(trip_id) if cursor.rowcount else None
    if not connection.in_atomic_block:
        return change.read.first(*values)
    # In a caller's transaction a savepoint keeps a change the constraints refuse (a
    # lost race) from aborting the caller's whole transaction.
    with transaction.atomic():
        return change.read.first(*values)


class _TripChange(NamedTuple):
    update: str  # the conditional UPDATE
    params: list[Field]  # the fields whose values fill its `%s`, in order
    read: ComposedRead[Trip]  # the UPDATE and the changed trip's read, as one statement


@functools.cache
def _trip_change(
    vendor: str, expected: tuple[str, ...], changes: tuple[str, ...], trail_measured: bool
) -> _TripChange:
    fields = Trip._meta.get_field
    quote = connection.ops.quote_name
    assignments = [f"{quote(fields(name).column)} = %s" for name in changes]
    params = list(map(fields, changes))
    if trail_measured:
        assignments.append(f"{quote(fields('distance_m').column)} = {trail_distance_sql()}")
        params.append(Trip._meta.pk)  # the trail's trip
    conditions = " AND ".join(
        [*(f"{quote(fields(name).column)} = %s" for name in ("id", *expected)), rights_held()]
    )
    update = f"UPDATE {quote(Trip._meta.db_table)} SET {', '.join(assignments)} WHERE {conditions}"
    params += [Trip._meta.pk, *map(fields, expected), *RIGHTS_PARAMS]
    read = ComposedRead(Trip, alias="t", related=TRIP_PARTIES, changed_by=update, params=params)
    return _TripChange(update, params, read)


def _requests_of_rider(rider: User, request_id: str) -> tuple[Trip | None, Trip | None]:
    """In one query: the trip an earlier request with `request_id` made, if any, and
    the rider's active trip, if any (they may be the same trip)."""
    trips = trips_requested_by(rider, request_id)
    earlier = next((trip for trip in trips if request_id and trip.request_id == request_id), None)
    active = next((trip for trip in trips if trip.status in Trip.ACTIVE_STATUSES), None)
    return earlier, active


def trip_request(
    *,
    rider: User,
    pick_up_address: str,
    drop_off_address: str,
    pick_up_lat: float | None = None,
    pick_up_lng: float | None = None,
    drop_off_lat: float | None = None,
    drop_off_lng: float | None = None,
    request_id: str = "",
    origin: Origin | None = None,
) -> tuple[Trip, bool]:
    """Open a request for `rider`; returns the trip and whether it is new.

    A repeated `request_id` returns the trip the first request made, and only the
    asking socket hears of it again: a retry after a lost reply makes no second trip.
    """
    if not rider.is_rider:
        raise errors.RoleRequired("Only riders can request trips.")
    trip = Trip(
        rider=rider,
        pick_up_address=pick_up_address,
        drop_off_address=drop_off_address,
        pick_up_lat=pick_up_lat,
        pick_up_lng=pick_up_lng,
        drop_off_lat=drop_off_lat,
        drop_off_lng=drop_off_lng,
        request_id=request_id,
    )
    if not _trip_made(trip):
        # The constraints refused it: an earlier request with this request_id made a
        # trip (if it is the answer, whatever the trip has become since), or the rider
        # has an active trip. They settle races, such as this very request sent twice.
        with _rights_confirmed(rider):
            earlier, active = _requests_of_rider(rider, request_id)
            if earlier:
                return _request_repeated(earlier, origin), False
            raise errors.RiderHasActiveTrip("You already have an active trip.", trip=active)
    # The new trip is as saved, with its rider: nothing to read back.
    payload = trip_payload(trip)
    deliver_on_commit(to_parties(trip, trip_message(TripEvent.REQUESTED, payload, origin)))
    dispatch.trip_offer(trip=trip, payload=payload)
    return trip, True


@contextmanager
def _rights_confirmed(user: User):
    """For a change its statement refused: first confirms that `user` still has the
    rights the caller read them with (`RightsChanged` if not), then marks the refusals
    made inside as made with them confirmed (`TripError.rights_confirmed`)."""
    if not rights_still_held(user):
        raise errors.RightsChanged("Your account has changed; try again.")
    try:
        yield
    except errors.TripError as refusal:
        refusal.rights_confirmed = True
        raise


def _trip_made(trip: Trip) -> bool:
    """Insert the new `trip` unless a uniqueness constraint (one active trip a rider,
    one trip a rider's request_id) refuses it, or its rider no longer has the rights
    the caller read them with; whether it was inserted.

    One statement, atomic without a transaction around it, which a refusal never
    aborts: the rider's trips are not read first, and a lost race is no error
    (docs/benchmarks.md, finding 43); nor is the rider, whose rights are tested in the
    insert itself, as a trip step tests its driver's (finding 75).
    """
    fields = Trip._meta.concrete_fields
    values = [field.get_db_prep_save(field.pre_save(trip, True), connection) for field in fields]
    rights = prepared(RIGHTS_PARAMS, rights_held_values(trip.rider))
    with connection.cursor() as cursor:
        cursor.execute(_trip_insert(connection.vendor), [*values, *rights])
        made = cursor.rowcount == 1
    if made:
        trip._state.adding = False
        trip._state.db = connection.alias
    return made


@functools.cache
def _trip_insert(vendor: str) -> str:
    """The new trip's `INSERT`, composed once for each database backend (`vendor`):
    a row of values for the trip's fields, then the rider's rights (`rights_held`).
    PostgreSQL and SQLite both skip a row that a uniqueness constraint refuses; both
    take the types of the values from the columns they go to."""
    quote = connection.ops.quote_name
    fields = Trip._meta.concrete_fields
    return plan_kept(
        f"INSERT INTO {quote(Trip._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT {', '.join(['%s'] * len(fields))} WHERE {rights_held()} "
        "ON CONFLICT DO NOTHING"
    )


def _request_repeated(earlier: Trip, origin: Origin | None) -> Trip:
    """Answer a repeated request, however it was found out, to the asking socket only."""
    deliver_on_commit(
        to_origin_only(trip_message(TripEvent.REQUESTED, trip_payload(earlier), origin), origin)
    )
    return earlier


def _require_driver_allowed(driver: User, trip_id) -> None:
    if not driver.is_driver:
        raise errors.RoleRequired(
            "Only drivers can accept trips.", trip=_visible_trip(driver, trip_id)
        )
    try:
        dispatch.driver_online_check(driver)
    except errors.TripError as error:
        error.trip = _visible_trip(driver, trip_id)
        raise


def _driver_busy(driver: User, trip_id) -> errors.DriverBusy:
    return errors.DriverBusy("You are already on a trip.", trip=_visible_trip(driver, trip_id))


def trip_accept(*, trip_id, driver: User, origin: Origin | None = None) -> Trip:
    """`driver` takes a requested trip. Of drivers racing for it, exactly one wins.

    A driver already on a trip is refused by the constraint of one active trip a
    driver, which the conditional update runs into; it is looked for only when the
    update changed nothing, to say why.
    """
    _require_driver_allowed(driver, trip_id)
    now = timezone.now()
    try:
        trip = _trip_changed(
            trip_id,
            acting=driver,
            expected={"status": Status.REQUESTED},
            changes={
                "status": Status.STARTED,
                "driver_id": driver.id,
                "accepted_at": now,
                "updated": now,
            },
        )
    except IntegrityError as error:
        raise _driver_busy(driver, trip_id) from error
    if trip is None:
        raise _not_accepted(driver, trip_with_parties(trip_id))
    payload = trip_payload(trip)
    deliver_on_commit(to_parties(trip, trip_message(TripEvent.ACCEPTED, payload, origin)))
    dispatch.trip_offers_close(trip=trip, payload=payload, kind=TripEvent.TAKEN)
    return trip


def _not_accepted(driver: User, trip: Trip | None) -> errors.TripError:
    """Why the driver's accept changed nothing."""
    if Trip.objects.filter(driver=driver, status__in=Trip.DRIVER_ACTIVE_STATUSES).exists():
        return _driver_busy(driver, trip.id if trip else None)
    if trip is None:
        return errors.TripNotFound("No such trip.")
    # The driver saw this request when it was offered, so they may see what became of
    # it; a trip that has long gone on (or ended) is none of their business.
    return errors.TripNotAvailable(
        "Another driver has already accepted this trip."
        if trip.status in Trip.DRIVER_ACTIVE_STATUSES
        else "This trip is no longer requested.",
        trip=trip if trip.status in (Status.STARTED, Status.CANCELED) else None,
    )


def trip_advance(*, trip_id, driver: User, status: str, origin: Origin | None = None) -> Trip:
    """The assigned driver picks the rider up (IN_PROGRESS), then drops them off."""
    if not driver.is_driver:
        raise errors.RoleRequired(
            "Only drivers can move a trip on.", trip=_visible_trip(driver, trip_id)
        )
    if status not in ADVANCE_FROM:
        raise errors.StatusOutOfOrder(
            f"A driver can move a trip to {' or '.join(ADVANCE_FROM)}, not {status}.",
            trip=_visible_trip(driver, trip_id),
        )
    now = timezone.now()
    trip = _trip_changed(
        trip_id,
        acting=driver,
        expected={"driver_id": driver.id, "status": ADVANCE_FROM[status]},
        changes={"status": status, "updated": now, ADVANCE_STAMP[status]: now},
        # The trail is complete: the driver's socket writes it out before this step.
        trail_measured=status == Status.COMPLETED,
    )
    if trip is None:
        trip = _visible_trip(driver, trip_id)
        if trip is None:
            raise errors.TripNotFound("No such trip.")
        if trip.driver_id != driver.id:
            raise errors.NotYourTrip("Only the trip's driver can do that.", trip=trip)
        raise errors.StatusOutOfOrder(f"A {trip.status} trip cannot become {status}.", trip=trip)
    deliver_on_commit(to_parties(trip, trip_message(TripEvent.UPDATED, trip_payload(trip), origin)))
    return trip


@warmed_by
def _steps_prepared() -> None:
    """A driver's accept, pick-up and drop-off of a trip that is not there, each refused
    as not found and nothing changed: a socket's steps, as it takes them."""
    nobody = User(id=0, role=User.Role.DRIVER, is_active=True, driver_approved_at=timezone.now())
    no_trip = uuid.UUID(int=0)
    steps = [functools.partial(trip_accept, trip_id=no_trip, driver=nobody)] + [
        functools.partial(trip_advance, trip_id=no_trip, driver=nobody, status=status)
        for status in ADVANCE_FROM
    ]
    for step in steps:
        with suppress(errors.TripNotFound):
            step()


def trip_cancel(*, trip_id, user: User, origin: Origin | None = None) -> Trip:
    """The rider cancels before pick-up; the assigned driver drops out before pick-up,
    which opens the request to other drivers again.

    A rider's cancel of a request no driver has taken, the common one, is a single
    conditional statement that tests their rights as well, so a socket need not read its
    user first (docs/benchmarks.md, finding 79). Any other cancel, or one that statement
    refused, is made under the trip's lock once the user's rights are confirmed.
    """
    now = timezone.now()
    trip = _trip_changed(
        trip_id,
        acting=user,
        expected={"rider_id": user.id, "status": Status.REQUESTED},
        changes={
            "status": Status.CANCELED,
            "canceled_at": now,
            "cancel_reason": Trip.CancelReason.RIDER,
            "updated": now,
        },
    )
    if trip is not None:
        return _rider_canceled(trip, origin, was_requested=True)
    with _rights_confirmed(user):
        return _trip_cancel_locked(trip_id, user, origin)


@transaction.atomic
def _trip_cancel_locked(trip_id, user: User, origin: Origin | None) -> Trip:
    trip = Trip.objects.select_for_update(of=("self",)).filter(id=trip_id).first()
    if trip is None or not trips_visible_to(user).filter(id=trip_id).exists():
        raise errors.TripNotFound("No such trip.")
    if trip.rider_id == user.id:
        return _rider_cancel(trip, origin)
    if trip.driver_id == user.id:
        return _driver_drop_out(trip, origin)
    raise errors.NotYourTrip(
        "Only the trip's rider or driver can cancel it.", trip=trip_with_parties(trip_id)
    )


def _rider_cancel(trip: Trip, origin: Origin | None) -> Trip:
    if trip.status not in (Status.REQUESTED, Status.STARTED):
        raise errors.StatusOutOfOrder(
            f"A {trip.status} trip can no longer be canceled.", trip=trip_with_parties(trip.id)
        )
    was_requested = trip.status == Status.REQUESTED
    trip.status = Status.CANCELED
    trip.canceled_at = timezone.now()
    trip.cancel_reason = Trip.CancelReason.RIDER
    trip.save(update_fields=["status", "canceled_at", "cancel_reason", "updated"])
    return _rider_canceled(trip_with_parties(trip.id), origin, was_requested=was_requested)


def _rider_canceled(trip: Trip, origin: Origin | None, *, was_requested: bool) -> Trip:
    """Tell the parties, and the drivers a request was offered to, that it is over."""
    payload = trip_payload(trip)
    deliver_on_commit(to_parties(trip, trip_message(TripEvent.CANCELED, payload, origin)))
    if was_requested:
        dispatch.trip_offers_close(trip=trip, payload=payload, kind=TripEvent.CANCELED)
    return trip


def _driver_drop_out(trip: Trip, origin: Origin | None) -> Trip:
    if trip.status != Status.STARTED:
        raise errors.StatusOutOfOrder(
            f"A driver cannot cancel a {trip.status} trip.", trip=trip_with_parties(trip.id)
        )
    former_driver = trip.driver_id
    trip.status = Status.REQUESTED
    trip.driver = None
    trip.accepted_at = None
    trip.save(update_fields=["status", "driver", "accepted_at", "updated"])
    trip = trip_with_parties(trip.id)
    payload = trip_payload(trip)
    message = trip_message(TripEvent.UPDATED, payload, origin)
    deliver_on_commit(to_parties(trip, message, also=(former_driver,)))
    dispatch.trip_offer(trip=trip, payload=payload, exclude=(former_driver,))
    return trip


@transaction.atomic
def trip_no_driver_found(*, trip_id, offered: list[int]) -> Trip | None:
    """End a request nobody accepted: the rider hears that no driver was found, and the
    drivers it was offered to that it is gone. None if it was no longer requested."""
    now = timezone.now()
    ended = Trip.objects.filter(id=trip_id, status=Status.REQUESTED).update(
        status=Status.CANCELED,
        canceled_at=now,
        cancel_reason=Trip.CancelReason.NO_DRIVER_FOUND,
        updated=now,
    )
    if not ended:
        return None
    trip = trip_with_parties(trip_id)
    payload = trip_payload(trip)
    gone = trip_message(TripEvent.CANCELED, payload)
    deliver_on_commit(
        to_parties(trip, trip_message(TripEvent.NO_DRIVER_FOUND, payload))
        + [to_group(user_group(driver), gone) for driver in offered]
    )
    return trip
