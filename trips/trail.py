"""The trail of a trip: where its driver was while it was active.

It is stored in segments, each the points one write of the driver's socket held
(`TrailSegment`), and read as one list of points in the order they were measured.
"""

import functools
import itertools
import math
import operator
import random
from datetime import UTC, datetime
from typing import NamedTuple

import orjson
from django.conf import settings
from django.db import connection

from config.composed_reads import prepared
from config.postgresql.kept_plans import plan_kept
from dispatch.geo import distance_m, distance_m_sql
from dispatch.positions import AcceptedPosition
from trips.models import TrailSegment

_TRIP = TrailSegment._meta.get_field("trip")
_POINTS = TrailSegment._meta.get_field("points")


class TrailPoint(NamedTuple):
    lat: float
    lng: float
    heading: float | None
    speed: float | None
    accuracy: float | None
    measured_at: datetime


# Where each of a stored point's values is (`TrailSegment.points`).
_LAT, _LNG, _MEASURED_AT = 0, 1, 5


def trail_points(trip_id) -> list[TrailPoint]:
    """The trip's trail, oldest first: in the order its points were measured, then in
    the order they were written."""
    segments = TrailSegment.objects.filter(trip_id=trip_id).order_by("id")
    stored = itertools.chain.from_iterable(segments.values_list("points", flat=True))
    # A stable sort: points measured at the same moment keep the order of their writes.
    in_order = sorted(stored, key=operator.itemgetter(_MEASURED_AT))
    return [
        TrailPoint(*point[:_MEASURED_AT], datetime.fromtimestamp(point[_MEASURED_AT], UTC))
        for point in in_order
    ]


def trail_distance_m(trip_id) -> float:
    """The length of the trip's trail, point to point along the great circle."""
    return sum(
        distance_m(a.lat, a.lng, b.lat, b.lng) for a, b in itertools.pairwise(trail_points(trip_id))
    )


@functools.cache
def trail_distance_sql() -> str:
    """`trail_distance_m` as a PostgreSQL subquery, with one `%s`: the trip. A trip's
    change can then set its distance in its own statement, from points that never
    leave the database (docs/benchmarks.md, finding 76)."""
    quote = connection.ops.quote_name
    # The first point has no leg before it, and is left out (not summed as a null: the
    # formula's LEAST would make a null half the Earth's circumference).
    leg = distance_m_sql("before_lat", "before_lng", "lat", "lng")
    value = "CAST(point ->> {} AS double precision)".format
    return (
        f"(SELECT COALESCE(SUM({leg}), 0) FROM ("
        "SELECT lat, lng, LAG(lat) OVER legs AS before_lat, LAG(lng) OVER legs AS before_lng "
        f"FROM (SELECT {value(_LAT)} AS lat, {value(_LNG)} AS lng, "
        f"{value(_MEASURED_AT)} AS measured_at, segment.id AS segment, place "
        f"FROM {quote(TrailSegment._meta.db_table)} AS segment, "
        f"jsonb_array_elements(segment.{quote(_POINTS.column)}) WITH ORDINALITY "
        "AS points (point, place) "
        f"WHERE segment.{quote(_TRIP.column)} = %s) AS points "
        "WINDOW legs AS (ORDER BY measured_at, segment, place)) AS legs "
        "WHERE before_lat IS NOT NULL)"
    )


def trail_head_start() -> int:
    """Points a socket's first trail batch counts as holding already: a random number
    short of a whole batch. Sockets that open together, as a restarted process's
    drivers do, would otherwise write their trails in the same second, every batch,
    for as long as they stay connected."""
    # A batch size below 1 writes each point as it comes: nothing to start ahead of.
    return random.randrange(max(settings.TRAIL_BATCH_SIZE, 1))


def trip_trail_record(*, trip_id, positions: list[AcceptedPosition]) -> None:
    """Add the driver's positions to the trip's trail, as one segment.

    Every driver on a trip writes a segment every few tens of seconds, and a busy
    server has thousands of them: the points go as one JSON document that the
    database stores as it is, in one statement (docs/benchmarks.md, findings 33 and
    100).
    """
    points = [[p.lat, p.lng, p.heading, p.speed, p.accuracy, p.measured_at] for p in positions]
    # Positions are checked finite as they arrive (`dispatch.positions`); were one not,
    # the write fails rather than store what JSON cannot hold (orjson writes it null).
    numbers = [value for point in points for value in point if value is not None]
    if not all(map(math.isfinite, numbers)):
        raise ValueError("A trail point's numbers must be finite.")
    document = orjson.dumps(points).decode()
    with connection.cursor() as cursor:
        cursor.execute(_segment_insert(), [*prepared([_TRIP], [trip_id]), document])


@functools.cache
def _segment_insert() -> str:
    quote = connection.ops.quote_name
    return plan_kept(
        f"INSERT INTO {quote(TrailSegment._meta.db_table)} "
        f"({quote(_TRIP.column)}, {quote(_POINTS.column)}) "
        f"VALUES (CAST(%s AS {_TRIP.db_type(connection)}), "
        f"CAST(%s AS {_POINTS.db_type(connection)}))"
    )
