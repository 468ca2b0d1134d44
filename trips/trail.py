"""The trail of a trip: where its driver was while it was active."""

import functools
import itertools
import math
import random
import uuid
from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.db import connection

from config.composed_reads import prepared
from config.postgresql.kept_plans import plan_kept
from dispatch.geo import distance_m, distance_m_sql
from dispatch.positions import AcceptedPosition
from trips.models import TrailPoint

# A point's columns, in the order each point's row is sent in.
_POINT_FIELDS = ("lat", "lng", "heading", "speed", "accuracy", "measured_at")
_TRIP = TrailPoint._meta.get_field("trip")


def trail_distance_m(trip_id) -> float:
    """The length of the trip's trail, point to point along the great circle."""
    with connection.cursor() as cursor:
        cursor.execute(_points_read(connection.vendor), prepared([_TRIP], [trip_id]))
        points = cursor.fetchall()
    return sum(distance_m(*a, *b) for a, b in itertools.pairwise(points))


@functools.cache
def trail_distance_sql() -> str:
    """`trail_distance_m` as a PostgreSQL subquery, with one `%s`: the trip. A trip's
    change can then set its distance in its own statement, from points that never
    leave the database (docs/benchmarks.md, finding 76)."""
    quote = connection.ops.quote_name
    lat, lng = (quote(TrailPoint._meta.get_field(name).column) for name in ("lat", "lng"))
    order = ", ".join(
        quote(TrailPoint._meta.get_field(name).column) for name in TrailPoint._meta.ordering
    )
    # The first point has no leg before it, and is left out (not summed as a null: the
    # formula's LEAST would make a null half the Earth's circumference).
    leg = distance_m_sql("before_lat", "before_lng", lat, lng)
    return (
        f"(SELECT COALESCE(SUM({leg}), 0) FROM ("
        f"SELECT {lat}, {lng}, LAG({lat}) OVER legs AS before_lat, "
        f"LAG({lng}) OVER legs AS before_lng "
        f"FROM {quote(TrailPoint._meta.db_table)} WHERE {quote(_TRIP.column)} = %s "
        f"WINDOW legs AS (ORDER BY {order})) AS points WHERE before_lat IS NOT NULL)"
    )


@functools.cache
def _points_read(vendor: str) -> str:
    """The trail's points in the trail's order, as the ORM writes the query for the
    database in use (`vendor`), compiled once: compiling it on every trip's completion
    cost four times the read itself (docs/benchmarks.md, finding 46)."""
    any_trip = uuid.UUID(int=0)
    query = TrailPoint.objects.filter(trip_id=any_trip).values_list("lat", "lng").query
    sql, params = query.get_compiler(connection=connection).as_sql()
    assert len(params) == 1, "the trip is the read's only parameter"
    return plan_kept(sql)


def trail_head_start() -> int:
    """Points a socket's first trail batch counts as holding already: a random number
    short of a whole batch. Sockets that open together, as a restarted process's
    drivers do, would otherwise write their trails in the same second, every batch,
    for as long as they stay connected."""
    # A batch size below 1 writes each point as it comes: nothing to start ahead of.
    return random.randrange(max(settings.TRAIL_BATCH_SIZE, 1))


def trip_trail_record(*, trip_id, positions: list[AcceptedPosition]) -> None:
    """Add the driver's positions to the trip's trail, in one insert.

    Every driver on a trip writes a batch of points every few tens of seconds, and a
    busy server has thousands of them. Through the ORM a batch cost four times the CPU
    (a model instance and seven adapted values a point) that it costs on PostgreSQL as
    one JSON document the database takes apart (docs/benchmarks.md, finding 33); other
    databases, the embedded default among them, take it through the ORM.
    """
    if connection.vendor == "postgresql":
        _trail_insert_from_json(trip_id, positions)
    else:
        _trail_insert_by_orm(trip_id, positions)


def _trail_insert_by_orm(trip_id, positions: list[AcceptedPosition]) -> None:
    TrailPoint.objects.bulk_create(
        TrailPoint(
            trip_id=trip_id,
            lat=position.lat,
            lng=position.lng,
            heading=position.heading,
            speed=position.speed,
            accuracy=position.accuracy,
            measured_at=_measured_at(position),
        )
        for position in positions
    )


def _trail_insert_from_json(trip_id, positions: list[AcceptedPosition]) -> None:
    rows = [[p.lat, p.lng, p.heading, p.speed, p.accuracy, _measured_at(p)] for p in positions]
    # Positions are checked finite as they arrive (`dispatch.positions`); were one not,
    # the write fails rather than store what JSON cannot hold (orjson writes it null).
    numbers = [value for row in rows for value in row[:5] if value is not None]
    if not all(map(math.isfinite, numbers)):
        raise ValueError("A trail point's numbers must be finite.")
    # orjson, times as datetimes: 37 µs a batch of 30, the check included, against the
    # standard library's 96 (docs/benchmarks.md, finding 96).
    document = orjson.dumps(rows).decode()
    with connection.cursor() as cursor:
        cursor.execute(_insert_from_json(), [*prepared([_TRIP], [trip_id]), document])


@functools.cache
def _insert_from_json() -> str:
    """The INSERT of a batch, its columns and types taken from the model: the trip's id,
    then one row a point from a JSON array of arrays in `_POINT_FIELDS` order."""
    quote = connection.ops.quote_name
    fields = [TrailPoint._meta.get_field(name) for name in _POINT_FIELDS]
    columns = ", ".join(quote(field.column) for field in (_TRIP, *fields))
    values = ", ".join(
        f"CAST(point ->> {index} AS {field.db_type(connection)})"
        for index, field in enumerate(fields)
    )
    return plan_kept(
        f"INSERT INTO {quote(TrailPoint._meta.db_table)} ({columns}) "
        f"SELECT CAST(%s AS {_TRIP.db_type(connection)}), {values} "
        "FROM json_array_elements(CAST(%s AS json)) AS point"
    )


def _measured_at(position: AcceptedPosition) -> datetime:
    return datetime.fromtimestamp(position.measured_at, UTC)
