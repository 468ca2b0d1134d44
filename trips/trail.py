"""The trail of a trip: where its driver was while it was active."""

import itertools
from datetime import UTC, datetime

from dispatch.geo import distance_m
from dispatch.positions import AcceptedPosition
from trips.models import TrailPoint


def trail_distance_m(trip_id) -> float:
    """The length of the trip's trail, point to point along the great circle."""
    points = list(TrailPoint.objects.filter(trip_id=trip_id).values_list("lat", "lng"))
    return sum(distance_m(*a, *b) for a, b in itertools.pairwise(points))


def trip_trail_record(*, trip_id, positions: list[AcceptedPosition]) -> None:
    """Add the driver's positions to the trip's trail, in one insert."""
    TrailPoint.objects.bulk_create(
        TrailPoint(
            trip_id=trip_id,
            lat=position.lat,
            lng=position.lng,
            heading=position.heading,
            speed=position.speed,
            accuracy=position.accuracy,
            measured_at=datetime.fromtimestamp(position.measured_at, UTC),
        )
        for position in positions
    )
