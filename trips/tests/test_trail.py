"""The trail's write: one statement a batch, the same rows whichever way it is written."""

import itertools

import pytest
from django.db import connection

from dispatch.geo import distance_m
from dispatch.positions import AcceptedPosition
from trips import trail
from trips.models import TrailPoint

FIELDS = ("lat", "lng", "heading", "speed", "accuracy", "measured_at")


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


def written(trip) -> list[tuple]:
    return list(TrailPoint.objects.filter(trip=trip).order_by("id").values_list(*FIELDS))


@pytest.mark.postgres
def test_postgresql_writes_the_rows_the_orm_would(
    rider, driver, make_trip, django_assert_num_queries
):
    by_orm = make_trip(rider, status="IN_PROGRESS", driver=driver)
    from_json = make_trip(rider, status="COMPLETED", driver=driver)
    trail._trail_insert_by_orm(by_orm.id, batch())

    with django_assert_num_queries(1) as queries:
        trail.trip_trail_record(trip_id=from_json.id, positions=batch())

    assert "json_array_elements" in queries[0]["sql"]  # not the ORM's own insert
    assert written(from_json) == written(by_orm)
    assert len(written(from_json)) == 5


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["lat", "heading"])
def test_a_point_that_is_not_finite_is_refused_and_nothing_is_written(
    rider, driver, make_trip, field
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    points = batch()
    points[3] = points[3]._replace(**{field: float("nan")})

    with pytest.raises(ValueError):
        trail.trip_trail_record(trip_id=trip.id, positions=points)

    assert written(trip) == []


def test_a_head_start_is_short_of_a_whole_batch_and_differs_between_sockets(settings):
    settings.TRAIL_BATCH_SIZE = 30

    head_starts = [trail.trail_head_start() for _ in range(200)]

    assert all(0 <= points < 30 for points in head_starts)
    assert len(set(head_starts)) > 10


def test_without_batches_there_is_no_head_start(settings):
    settings.TRAIL_BATCH_SIZE = 0  # each point written as it comes

    assert trail.trail_head_start() == 0


@pytest.mark.django_db
def test_a_trail_s_distance_takes_its_points_in_the_order_they_were_measured(
    rider, driver, make_trip, django_assert_num_queries
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    points = batch()
    trail._trail_insert_by_orm(trip.id, [points[step] for step in (3, 0, 4, 1, 2)])
    along_the_way = sum(
        distance_m(a.lat, a.lng, b.lat, b.lng) for a, b in itertools.pairwise(points)
    )

    with django_assert_num_queries(1):
        measured = trail.trail_distance_m(trip.id)

    assert measured == pytest.approx(along_the_way)
    without_a_trail = make_trip(rider, status="COMPLETED", driver=driver)
    assert trail.trail_distance_m(without_a_trail.id) == 0


def measured_by_postgresql(trip_id) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {trail.trail_distance_sql()}", [trip_id])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_measures_a_trail_as_python_does(rider, driver, make_trip):
    trip = make_trip(rider, status="IN_PROGRESS", driver=driver)
    points = batch()
    # Written out of order, and one point twice at the same moment: the legs follow
    # the order the points were measured in, then the order they were written in.
    again = points[2]._replace(lat=points[2].lat + 0.01)
    trail._trail_insert_by_orm(trip.id, [points[step] for step in (3, 0, 4, 1, 2)])
    trail._trail_insert_by_orm(trip.id, [again])
    read = list(TrailPoint.objects.filter(trip=trip))  # in the model's order

    assert [point.lat for point in read][2:4] == [points[2].lat, again.lat]
    assert measured_by_postgresql(trip.id) == pytest.approx(
        trail.trail_distance_m(trip.id), rel=1e-12
    )
    assert measured_by_postgresql(trip.id) == pytest.approx(
        sum(distance_m(a.lat, a.lng, b.lat, b.lng) for a, b in itertools.pairwise(read)),
        rel=1e-12,
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_measures_no_trail_and_a_single_point_as_nothing(rider, driver, make_trip):
    without_a_trail = make_trip(rider, status="COMPLETED", driver=driver)
    one_point = make_trip(rider, status="IN_PROGRESS", driver=driver)
    trail._trail_insert_by_orm(one_point.id, batch()[:1])

    assert measured_by_postgresql(without_a_trail.id) == 0
    assert measured_by_postgresql(one_point.id) == 0
