"""Carrying out a socket's trip commands through the trip services (on a worker thread)."""

from accounts.models import User
from accounts.selectors import user_active
from realtime.protocols import (
    AcceptTrip,
    AdvanceTrip,
    CancelTrip,
    Command,
    CourseUpdateTrip,
    RequestTrip,
    user_id_of,
)
from trips import errors, services
from trips.events import Origin
from trips.models import Trip
from trips.selectors import trips_visible_to


class SessionEnded(Exception):
    """The socket's user was deactivated or deleted since it connected."""


def acting_user(user_id: int) -> User:
    """The user as the database has them now: rights are checked on every message."""
    user = user_active(user_id)
    if user is None:
        raise SessionEnded
    return user


def command_execute(user: User, command: Command, origin: Origin) -> User:
    """Carry out `command` for `user`, as the socket last read them, with their rights as
    the database has them now; gives back the user as last read, for the next command.

    A request, an accept, an advance or a cancel tests the user's rights in its own
    statement, so it reads the user only when it is refused: if their rights changed,
    it is theirs to try again as they are now (or their session is over), unless the
    refusal came after the service had confirmed their rights. Every other command
    reads the user first.
    """
    match command:
        case RequestTrip() | AcceptTrip() | AdvanceTrip() | CancelTrip():
            try:
                _carry_out(user, command, origin)
                return user
            except errors.TripError as refusal:
                if refusal.rights_confirmed:
                    raise
                current = acting_user(user.id)
                if current.rights == user.rights:
                    raise
                user = current
        case _:
            user = acting_user(user.id)
    _carry_out(user, command, origin)
    return user


def _carry_out(user: User, command: Command, origin: Origin) -> None:
    match command:
        case RequestTrip():
            services.trip_request(
                rider=user, **command.fields, request_id=command.request_id or "", origin=origin
            )
        case AcceptTrip():
            services.trip_accept(trip_id=command.trip_id, driver=user, origin=origin)
        case AdvanceTrip():
            services.trip_advance(
                trip_id=command.trip_id, driver=user, status=command.status, origin=origin
            )
        case CancelTrip():
            services.trip_cancel(trip_id=command.trip_id, user=user, origin=origin)
        case CourseUpdateTrip():
            _course_update(user, command, origin)
        case _:
            raise TypeError(f"Not a trip command: {command!r}")


def _course_update(user: User, command: CourseUpdateTrip, origin: Origin) -> None:
    """A course client's `update.trip`: the status it names is the step it asks for.

    The parties it names are claims to check, never values to apply.
    """
    trip = trips_visible_to(user).filter(id=command.trip_id).first()
    if trip is not None:
        claimed_rider = user_id_of(command.claims.rider)
        if claimed_rider is not None and claimed_rider != str(trip.rider_id):
            raise errors.FieldNotAllowed(
                "A trip's rider cannot be changed.", field="rider", trip=trip
            )
        claimed_driver = user_id_of(command.claims.driver)
        if claimed_driver is not None and claimed_driver != str(user.id):
            raise errors.FieldNotAllowed(
                "You can only name yourself as the driver.", field="driver", trip=trip
            )
    match command.status:
        case Trip.Status.STARTED:
            services.trip_accept(trip_id=command.trip_id, driver=user, origin=origin)
        case Trip.Status.CANCELED:
            services.trip_cancel(trip_id=command.trip_id, user=user, origin=origin)
        case _:
            services.trip_advance(
                trip_id=command.trip_id, driver=user, status=command.status, origin=origin
            )
