"""The trips' indexes in the migrated database: the constraints that settle races are
there, and no index duplicates the lead of another (every trip step writes them all)."""

import pytest
from django.db import connection
from django.db.models import UniqueConstraint

from trips.models import TrailPoint, Trip

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.mark.parametrize("model", [Trip, TrailPoint], ids=["trip", "trail point"])
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
