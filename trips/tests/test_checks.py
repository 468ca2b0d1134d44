"""The trips' check constraints, in whichever database is migrated: what they refuse
leaves the table as it was, and what they allow is written."""

import pytest
from django.db import IntegrityError, transaction

from trips.models import Trip
from trips.tests.conftest import trip_rows

pytestmark = pytest.mark.django_db

Status = Trip.Status
# Stands for the test's driver in a row's fields.
DRIVER = object()
IN_RANGE = {"pick_up_lat": -90, "pick_up_lng": 180, "drop_off_lat": 90, "drop_off_lng": -180}


def with_driver(fields: dict, driver) -> dict:
    return {name: driver if value is DRIVER else value for name, value in fields.items()}


@pytest.mark.parametrize(
    "fields",
    [
        {"pick_up_lat": -90.001, "pick_up_lng": 0},
        {"pick_up_lat": 90.001, "pick_up_lng": 0},
        {"pick_up_lat": 0, "pick_up_lng": -180.001},
        {"pick_up_lat": 0, "pick_up_lng": 180.001},
        {"pick_up_lat": 0},
        {"pick_up_lng": 0},
        {"drop_off_lat": -90.001, "drop_off_lng": 0},
        {"drop_off_lat": 90.001, "drop_off_lng": 0},
        {"drop_off_lat": 0, "drop_off_lng": -180.001},
        {"drop_off_lat": 0, "drop_off_lng": 180.001},
        {"drop_off_lat": 0},
        {"drop_off_lng": 0},
        {"status": Status.STARTED},
        {"status": Status.IN_PROGRESS},
        {"status": Status.COMPLETED},
        {"status": Status.REQUESTED, "driver": DRIVER},
    ],
)
def test_the_checks_refuse_a_trip_that_breaks_them(rider, driver, make_trip, fields):
    before = trip_rows()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_trip(rider, **with_driver(fields, driver))
    assert trip_rows() == before


@pytest.mark.parametrize(
    "fields",
    [
        IN_RANGE,
        {key: -value for key, value in IN_RANGE.items()},
        {"status": Status.REQUESTED},
        {"status": Status.STARTED, "driver": DRIVER},
        {"status": Status.IN_PROGRESS, "driver": DRIVER},
        {"status": Status.COMPLETED, "driver": DRIVER},
        {"status": Status.CANCELED},
        {"status": Status.CANCELED, "driver": DRIVER},
    ],
)
def test_the_checks_take_a_trip_that_keeps_them(rider, driver, make_trip, fields):
    trip = make_trip(rider, **with_driver(fields, driver))
    assert Trip.objects.filter(id=trip.id).exists()
