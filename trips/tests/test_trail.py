"""The trail's write, a segment a batch in one statement, and its reads: the points in
the order they were measured, and the distance along them."""

import itertools
from datetime import UTC, datetime

import pytest
from django.db import connection

from dispatch.geo import distance_m
from dispatch.positions import AcceptedPosition
from trips import trail
from trips.models import TrailSegment

pytestmark = pytest.mark.django_db


def batch() -> list[AcceptedPosition]:
    """Points with every optional field both present and missing, and measured times
    that need all six digits of their microseconds."""
    return [
        AcceptedPosition(
            lat=51.5007 + step / 7_000,
            lng=-0.1246 - step / 9_000,
            heading=None if step % 2 else 0.1 * step,
            speed=None if step % 3 == 0 else 13.000000000000002,
            accuracy=None if step == 1 else 4.25,
            measured_at=1_795_000_000.123457 + step * 1.000001,
            received_at=1_795_000_000.5 + step,
            next_slot_at=0.0,
        )
        for step in range(5)
    ]


def as_read(position: AcceptedPosition) -> trail.TrailPoint:
    return trail.TrailPoint(
        lat=position.lat,
        lng=position.lng,
        heading=position.heading,
        speed=position.speed,
        accuracy=position.accuracy,
        measured_at=datetime.fromtimestamp(position.measured_at, UTC),
    )


def test_a_batch_is_one_segment_written_in_one_statement_and_read_as_it_came(
    rider, driver, make_trip, django_assert_num_queries
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    other = make_trip(rider, status="COMPLETED", driver=driver)
    trail.trip_trail_record(trip_id=other.id, positions=batch()[:2])

    with django_assert_num_queries(1):
        trail.trip_trail_record(trip_id=trip.id, positions=batch())

    assert TrailSegment.objects.filter(trip=trip).count() == 1
    read = trail.trail_points(trip.id)
    assert read == [as_read(position) for position in batch()]
    assert read[1].measured_at == datetime(2026, 11, 18, 11, 6, 41, 123458, tzinfo=UTC)
    assert trail.trail_points(other.id) == [as_read(position) for position in batch()[:2]]


def test_the_api_gives_a_trail_s_points_oldest_first_with_every_field(
    rider, driver, make_trip, client_for
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    points = batch()
    trail.trip_trail_record(trip_id=trip.id, positions=[points[2], points[3]])
    trail.trip_trail_record(trip_id=trip.id, positions=[points[0], points[1]])

    response = client_for(rider).get(f"/api/trip/{trip.id}/trail/")

    assert response.status_code == 200
    assert response.json()[:2] == [
        {
            "lat": 51.5007,
            "lng": -0.1246,
            "heading": 0.0,
            "speed": None,
            "accuracy": 4.25,
            "measured_at": "2026-11-18T11:06:40.123457Z",
        },
        {
            "lat": points[1].lat,
            "lng": points[1].lng,
            "heading": None,
            "speed": 13.000000000000002,
            "accuracy": None,
            "measured_at": "2026-11-18T11:06:41.123458Z",
        },
    ]
    assert [point["lat"] for point in response.json()] == [p.lat for p in points[:4]]


@pytest.mark.parametrize("field", ["lat", "heading", "measured_at"])
def test_a_point_that_is_not_finite_is_refused_and_nothing_is_written(
    rider, driver, make_trip, field
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    points = batch()
    points[3] = points[3]._replace(**{field: float("nan")})

    with pytest.raises(ValueError):
        trail.trip_trail_record(trip_id=trip.id, positions=points)

    assert not TrailSegment.objects.exists()


def test_a_head_start_is_short_of_a_whole_batch_and_differs_between_sockets(settings):
    settings.TRAIL_BATCH_SIZE = 30

    head_starts = [trail.trail_head_start() for _ in range(200)]

    assert all(0 <= points < 30 for points in head_starts)
    assert len(set(head_starts)) > 10


def test_without_batches_there_is_no_head_start(settings):
    settings.TRAIL_BATCH_SIZE = 0  # each point written as it comes

    assert trail.trail_head_start() == 0


def written_out_of_order(trip_id) -> list[AcceptedPosition]:
    """The batch's points written in two segments, each out of the order they were
    measured in, the later segment holding the earliest point; and one point again,
    measured at the same moment as another. The points in the order they should be
    read in."""
    points = batch()
    again = points[2]._replace(lat=points[2].lat + 0.01)
    trail.trip_trail_record(trip_id=trip_id, positions=[points[step] for step in (3, 4, 2)])
    trail.trip_trail_record(trip_id=trip_id, positions=[again, points[1], points[0]])
    return [*points[:3], again, *points[3:]]


def test_a_trail_is_read_in_the_order_its_points_were_measured_then_written(
    rider, driver, make_trip, django_assert_num_queries
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    in_order = written_out_of_order(trip.id)

    with django_assert_num_queries(1):
        read = trail.trail_points(trip.id)

    assert read == list(map(as_read, in_order))


def test_a_trail_s_distance_takes_its_points_in_the_order_they_were_measured(
    rider, driver, make_trip, django_assert_num_queries
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    in_order = written_out_of_order(trip.id)
    along_the_way = sum(
        distance_m(a.lat, a.lng, b.lat, b.lng) for a, b in itertools.pairwise(in_order)
    )

    with django_assert_num_queries(1):
        measured = trail.trail_distance_m(trip.id)

    assert measured == pytest.approx(along_the_way, rel=1e-12)
    without_a_trail = make_trip(rider, status="COMPLETED", driver=driver)
    assert trail.trail_distance_m(without_a_trail.id) == 0


def measured_by_postgresql(trip_id) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {trail.trail_distance_sql()}", [trip_id])
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_postgresql_measures_a_trail_as_python_does(rider, driver, make_trip):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    other = make_trip(rider, status="COMPLETED", driver=driver)
    in_order = written_out_of_order(trip.id)
    trail.trip_trail_record(trip_id=other.id, positions=[batch()[0]._replace(lat=10.0)])

    assert measured_by_postgresql(trip.id) == pytest.approx(
        trail.trail_distance_m(trip.id), rel=1e-12
    )
    assert measured_by_postgresql(trip.id) == pytest.approx(
        sum(distance_m(a.lat, a.lng, b.lat, b.lng) for a, b in itertools.pairwise(in_order)),
        rel=1e-12,
    )


@pytest.mark.postgres
def test_postgresql_measures_no_trail_and_a_single_point_as_nothing(rider, driver, make_trip):
    without_a_trail = make_trip(rider, status="COMPLETED", driver=driver)
    one_point = make_trip(rider, status="IN_PROGRESS", driver=driver)
    trail.trip_trail_record(trip_id=one_point.id, positions=batch()[:1])

    assert measured_by_postgresql(without_a_trail.id) == 0
    assert measured_by_postgresql(one_point.id) == 0
