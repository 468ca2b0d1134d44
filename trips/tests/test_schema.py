"""The trips' indexes and checks in the migrated PostgreSQL database: the constraints
that settle races are there, no index duplicates the lead of another (every trip step
writes them all), and the checks' constants need no converting by each statement."""

import pytest
from django.db import connection
from django.db.models import UniqueConstraint

from trips.models import TrailSegment, Trip

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.mark.parametrize("model", [Trip, TrailSegment], ids=["trip", "trail segment"])
def test_the_tables_indexes_are_the_models_and_no_more(model):
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    # The primary key's own index is not among them.
    indexes = {name for name, info in found.items() if info["index"]}
    declared = {index.name for index in model._meta.indexes} | {
        constraint.name
        for constraint in model._meta.constraints
        if isinstance(constraint, UniqueConstraint)
    }
    assert indexes == declared


def test_the_checks_bounds_and_statuses_are_constants_of_their_columns_types():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'c'",
            [Trip._meta.db_table],
        )
        checks = dict(cursor.fetchall())
    assert set(checks) == {
        "trip_driver_matches_status",
        "trip_pick_up_coordinates_valid",
        "trip_drop_off_coordinates_valid",
    }
    for definition in checks.values():
        assert "numeric" not in definition
        assert "ARRAY" not in definition
