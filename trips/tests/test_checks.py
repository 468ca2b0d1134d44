"""The trips' check constraints, in whichever database is migrated: what they refuse
leaves the table as it was, and what they allow is written."""

import pytest
from django.db import IntegrityError, transaction

from trips.models import Trip
from trips.tests.conftest import trip_rows

pytestmark = pytest.mark.django_db

Status = Trip.Status
IN_RANGE = {"pick_up_lat": -90, "pick_up_lng": 180, "drop_off_lat": 90, "drop_off_lng": -180}


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
        {"status": Status.REQUESTED, "with_driver": True},
    ],
)
def test_the_checks_refuse_a_trip_that_breaks_them(rider, driver, make_trip, fields):
    fields = dict(fields)
    if fields.pop("with_driver", False):
        fields["driver"] = driver
    before = trip_rows()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_trip(rider, **fields)
    assert trip_rows() == before


@pytest.mark.parametrize(
    "fields",
    [
        IN_RANGE,
        {key: -value for key, value in IN_RANGE.items()},
        {"status": Status.REQUESTED},
        {"status": Status.STARTED, "with_driver": True},
        {"status": Status.IN_PROGRESS, "with_driver": True},
        {"status": Status.COMPLETED, "with_driver": True},
        {"status": Status.CANCELED},
        {"status": Status.CANCELED, "with_driver": True},
    ],
)
def test_the_checks_take_a_trip_that_keeps_them(rider, driver, make_trip, fields):
    fields = dict(fields)
    if fields.pop("with_driver", False):
        fields["driver"] = driver
    trip = make_trip(rider, **fields)
    assert Trip.objects.filter(id=trip.id).exists()
