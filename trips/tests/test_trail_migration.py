"""The trail's move from a row a point to segments (migration 0005) keeps every point,
in order, and going back gives the same points."""

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from trips import trail
from trips.models import TrailSegment

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("trips", "0004_coordinates_checks_both_or_neither")]
AFTER = [("trips", "0005_trail_segments")]
FIELDS = ("lat", "lng", "heading", "speed", "accuracy", "measured_at")


def migrated(targets):
    """The apps as they are at `targets`, once the database has been migrated there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def points_stored(TrailPoint, trip_id) -> list[tuple]:
    """A trip's points, a row each, in the order they were measured, then stored."""
    points = TrailPoint.objects.filter(trip_id=trip_id).order_by("measured_at", "id")
    return list(points.values_list(*FIELDS))


@pytest.fixture
def at_the_points_table():
    apps = migrated(BEFORE)
    yield apps
    migrated(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.fixture
def segment_points(monkeypatch):
    migration = importlib.import_module("trips.migrations.0005_trail_segments")
    monkeypatch.setattr(migration, "SEGMENT_POINTS", 2)
    return 2


def test_points_move_into_segments_and_back_unchanged(
    at_the_points_table, segment_points, rider, driver, make_trip
):
    TrailPoint = at_the_points_table.get_model("trips", "TrailPoint")
    trip, other = (make_trip(rider, status="COMPLETED", driver=driver) for _ in range(2))
    start = datetime(2026, 11, 18, 11, 6, 41, 123457, tzinfo=UTC)
    # Stored out of order, one point measured at the same moment as the one before it.
    steps = [(trip, 3), (trip, 0), (other, 0), (trip, 1), (trip, 2), (trip, 2), (other, 1)]
    for number, (of, step) in enumerate(steps):
        TrailPoint.objects.create(
            trip_id=of.id,
            lat=51.5 + number / 1_000,
            lng=-0.12,
            heading=None if number % 2 else 90.0,
            speed=8.5,
            accuracy=None,
            measured_at=start + timedelta(seconds=step),
        )
    stored = {of.id: points_stored(TrailPoint, of.id) for of in (trip, other)}
    assert len(stored[trip.id]) == 5

    migrated(AFTER)

    assert {of: [tuple(point) for point in trail.trail_points(of)] for of in stored} == stored
    assert TrailSegment.objects.filter(trip=trip).count() == 3  # 5 points, 2 a segment
    assert TrailSegment.objects.filter(trip=other).count() == 1

    TrailPoint = migrated(BEFORE).get_model("trips", "TrailPoint")

    assert {of: points_stored(TrailPoint, of) for of in stored} == stored
