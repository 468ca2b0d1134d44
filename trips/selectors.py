import functools
import uuid
from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.db.models import Field, Q, QuerySet
from django.db.models.expressions import Col

from accounts.models import User, photo_url
from accounts.selectors import role_held, user_holds_role
from config.composed_reads import (
    ComposedRead,
    LeadRead,
    column_sql,
    converted,
    converters_of,
    join,
    prepared,
    text_literal,
)
from config.postgresql.kept_plans import plan_kept, warmed_by
from trips.models import Trip

_status = Trip._meta.get_field("status")
_user_id = User._meta.pk
_holder = (_user_id, User._meta.get_field("role"))
# A trip read with its parties joins its rider as `r` and its driver as `d`.
TRIP_PARTIES = {"rider": "r", "driver": "d"}
# Written into the statements that look for active trips, not passed to them: a plan
# kept for every user must know which statuses it reads (config/postgresql/kept_plans).
_active = ", ".join(map(text_literal, Trip.ACTIVE_STATUSES))
_driving = ", ".join(map(text_literal, Trip.DRIVER_ACTIVE_STATUSES))
_requested = text_literal(Trip.Status.REQUESTED)


def _concerning(user_id: str) -> str:
    """The active trips that concern the user whose id is the SQL `user_id`, as rider
    or as driver: each side as its partial unique index has it (a driver's trip is
    active STARTED or IN_PROGRESS; a REQUESTED one has no driver), so that PostgreSQL
    reads those indexes and not a driver's whole history of trips."""
    return (
        f"((t.rider_id = {user_id} AND t.status IN ({_active}))"
        f" OR (t.driver_id = {user_id} AND t.status IN ({_driving})))"
    )


_by_id = ComposedRead(
    Trip, alias="t", related=TRIP_PARTIES, where="t.id = %s", params=[Trip._meta.pk]
)
_active_for = ComposedRead(
    Trip,
    alias="t",
    related=TRIP_PARTIES,
    where=_concerning("%s"),
    params=[_user_id, _user_id],
)
_user_with_active_trips = LeadRead(
    User,
    alias="u",
    follows=ComposedRead(Trip, alias="t", related=TRIP_PARTIES, params=[]),
    on=_concerning("u.id"),
)
_requests_of_rider = ComposedRead(
    Trip,
    alias="t",
    related=TRIP_PARTIES,
    where=f"t.rider_id = %s AND (t.status IN ({_active}) OR t.request_id = %s)",
    params=[_user_id, Trip._meta.get_field("request_id")],
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
    return _active_for(user.id, user.id)


def user_with_active_trips(user_id) -> tuple[User | None, list[Trip]]:
    """The user, active or not, and the trips that still concern them (as
    `trips_active_for`), in one statement: a socket's handshake with a token reads
    both (docs/benchmarks.md, finding 67). None and no trips if there is no such user."""
    return _user_with_active_trips(user_id)


@warmed_by
def _handshake_read_prepared() -> None:
    """A handshake's read for a user who is not there."""
    user_with_active_trips(0)


def trips_requested_by(rider: User, request_id: str) -> list[Trip]:
    """The rider's active trip, if any, and the trip an earlier request with
    `request_id` made, if any (they may be one trip)."""
    # A blank request id stands for none: NULL equals no trip's request id.
    return _requests_of_rider(rider.id, request_id or None)


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
_LISTED_COLUMNS = [
    *[Col("t", Trip._meta.get_field(name)) for name in _TRIP_COLUMNS],
    *[Col(as_, User._meta.get_field(name)) for as_ in ("r", "d") for name in _PARTY_COLUMNS],
]


class ClaimedUser(NamedTuple):
    """A user as a token claims them, not read: all a list read for them needs (a model
    instance cost a request more than the read's own Python: finding 73). Their role
    means what it means for a `User`."""

    id: int
    role: str

    Role = User.Role
    is_rider = User.is_rider
    is_driver = User.is_driver


def _visible_to(user: "User | ClaimedUser") -> tuple[str, list[tuple[Field, object]]] | None:
    """What `user` sees, as `trips_visible_to` says it: the condition, and its values
    with the fields that ready them for the database."""
    if user.is_rider:
        return "t.rider_id = %s", [(_user_id, user.id)]
    if user.is_driver:
        return f"(t.status = {_requested} OR t.driver_id = %s)", [(_user_id, user.id)]
    return None


class UserNotConfirmed(Exception):
    """The user a list was read for is gone, inactive or of another role now."""


class VisibleTrips:
    """The trips `user` sees (as `trips_visible_to`), only those in `status` if one is
    given, newest first, each read as a `ListedTrip`: one row of only the columns a
    listed trip shows, its rider's and driver's joined: all of them, or a page with the
    count of them all.

    Their SQL is composed once for each form the list takes: a page of model instances
    took two fifths more CPU than rows (docs/benchmarks.md, finding 32), and the ORM's
    compiling of the rows' query and the count's was most of what was left (finding 37).

    `user` unread (a `ClaimedUser`, as a token claims them) is confirmed by the read
    itself: they still exist, active, with that role, or `UserNotConfirmed` is
    raised. A read that finds trips carries the confirmation in its own statement; one
    that finds none confirms the user after (finding 70).
    """

    def __init__(
        self, user: "User | ClaimedUser", status: str | None = None, *, unread: bool = False
    ):
        self._statements, self._params = None, []
        self._unread = prepared(_holder, (user.id, user.role)) if unread else None
        visible = _visible_to(user)
        if visible is not None:
            where, values = visible
            if status:
                where, values = f"{where} AND t.status = %s", [*values, (_status, status)]
            self._statements = _composed_list(connection.vendor, where)
            fields, raw = zip(*values, strict=True)
            self._params = prepared(fields, raw)

    def count(self) -> int:
        self._confirm()
        if self._statements is None:
            return 0
        return self._fetch(self._statements.count, self._params)[0][0]

    def page_counted(self, offset: int, limit: int) -> tuple[list[ListedTrip], int]:
        """The `limit` trips from `offset` on, and how many there are in all: one
        statement, unless the page is past the last trip."""
        if offset < 0 or limit < 1:
            raise ValueError("A page of trips has a trip or more, from an offset of 0 or more.")
        if self._statements is None:
            self._confirm()
            return [], 0
        statements = self._statements
        # The condition's parameters twice: the count's, then the page's.
        params = [*self._params, *self._params, limit, offset]
        rows = self._rows(statements.counted_page, statements.counted_page_confirming, params)
        if not rows:
            return [], 0 if offset == 0 else self.count()
        converters = statements.converters
        return [_listed(converted(row[1:], converters)) for row in rows], rows[0][0]

    def __iter__(self):
        if self._statements is None:
            self._confirm()
            return iter([])
        statements = self._statements
        rows = self._rows(statements.all_rows, statements.all_rows_confirming, self._params)
        converters = statements.converters
        return iter([_listed(converted(row, converters)) for row in rows])

    def _rows(self, sql: str, confirming: str, params: list) -> list:
        """The rows `sql` reads; for an unread user, those `confirming` reads (the same
        after a first column that confirms them, in every row), the user confirmed."""
        if self._unread is None:
            return self._fetch(sql, params)
        rows = self._fetch(confirming, self._unread + params)
        if not rows:
            self._confirm()  # no row to say
            return rows
        if not rows[0][0]:
            raise UserNotConfirmed
        self._unread = None
        return [row[1:] for row in rows]

    def _confirm(self) -> None:
        """Confirm an unread user on their own, once."""
        if self._unread is not None:
            if not user_holds_role(*self._unread):
                raise UserNotConfirmed
            self._unread = None

    @staticmethod
    def _fetch(sql: str, params: list) -> list:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()


class _ComposedList(NamedTuple):
    count: str
    # The count, written into each row as its first column, then the page's columns;
    # its parameters are the condition's twice, then the limit and the offset.
    counted_page: str
    # The same, after a first column that confirms a user (`role_held`): its
    # parameters, then the condition's twice, the limit and the offset.
    counted_page_confirming: str
    all_rows: str
    # The same after a first column that confirms a user, as `counted_page_confirming`.
    all_rows_confirming: str
    converters: list


@functools.cache
def _composed_list(vendor: str, where: str) -> _ComposedList:
    """The list's statements for the backend `vendor` names; `where` is one of the
    constant conditions above, never input."""
    quote = connection.ops.quote_name
    trips = f"FROM {quote(Trip._meta.db_table)} AS t"
    count = f"SELECT COUNT(*) {trips} WHERE {where}"
    columns = ", ".join(column_sql(column) for column in _LISTED_COLUMNS)
    rows = " ".join(
        [
            trips,
            join("t", Trip._meta.get_field("rider"), "r"),
            join("t", Trip._meta.get_field("driver"), "d"),
            f"WHERE {where} ORDER BY t.{quote(Trip._meta.get_field('created').column)} DESC",
        ]
    )
    return _ComposedList(
        count=plan_kept(count),
        # A statement a page instead of two (the count's own cost 120-130 µs of CPU a
        # request: finding 64). The count's `t` is its own, not the page's row.
        counted_page=plan_kept(f"SELECT ({count}), {columns} {rows} LIMIT %s OFFSET %s"),
        counted_page_confirming=plan_kept(
            f"SELECT {role_held()}, ({count}), {columns} {rows} LIMIT %s OFFSET %s"
        ),
        all_rows=f"SELECT {columns} {rows}",
        all_rows_confirming=f"SELECT {role_held()}, {columns} {rows}",
        converters=converters_of(_LISTED_COLUMNS),
    )


def _listed(row: list) -> ListedTrip:
    trip_end = len(_TRIP_COLUMNS)
    rider_end = trip_end + len(_PARTY_COLUMNS)
    return ListedTrip(
        *row[:trip_end], _listed_party(row[trip_end:rider_end]), _listed_party(row[rider_end:])
    )


def _listed_party(values: list) -> ListedParty | None:
    if values[0] is None:  # no driver: the outer join found no row
        return None
    *public, photo = values
    return ListedParty(*public, photo_url(photo))
