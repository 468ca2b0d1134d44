"""The hand-built trip representation says exactly what DRF's fields would."""

import io
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework import serializers

from config.renderers import JSONRenderer
from trips.selectors import VisibleTrips
from trips.serializers import TripSerializer, in_utc, trip_representation

pytestmark = pytest.mark.django_db


def by_drf_fields(trip) -> dict:
    return serializers.ModelSerializer.to_representation(TripSerializer(), trip)


def photo() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="PNG")
    return SimpleUploadedFile("face.png", buffer.getvalue(), content_type="image/png")


def test_a_request_without_driver_or_coordinates(rider, make_trip):
    trip = make_trip(rider)

    assert trip_representation(trip) == by_drf_fields(trip)


def test_a_finished_trip_with_everything_set(rider, driver, make_trip):
    driver.photo.save("face.png", photo())
    now = timezone.now()
    trip = make_trip(
        rider,
        driver=driver,
        status="COMPLETED",
        pick_up_lat=52.37,
        pick_up_lng=4.89,
        drop_off_lat=-33.9,
        drop_off_lng=18.4,
        accepted_at=now,
        picked_up_at=now,
        completed_at=now,
        distance_m=1234.5,
    )
    trip.refresh_from_db()

    represented = trip_representation(trip)

    assert represented == by_drf_fields(trip)
    assert represented["driver"]["photo"].startswith("/media/photos/")
    assert represented["completed_at"].endswith("Z")


def listed(trip) -> dict:
    (row,) = [row for row in VisibleTrips(trip.rider) if row.id == trip.id]
    return trip_representation(row)


def test_a_listed_trip_is_represented_as_the_trip_itself(rider, driver, make_trip):
    driver.photo.save("face.png", photo())
    request = make_trip(rider)
    finished = make_trip(
        rider,
        driver=driver,
        status="COMPLETED",
        pick_up_lat=52.37,
        pick_up_lng=4.89,
        completed_at=timezone.now(),
        distance_m=1234.5,
    )

    for trip in (request, finished):
        trip.refresh_from_db()
        assert listed(trip) == trip_representation(trip)
    assert listed(finished)["driver"]["photo"].startswith("/media/photos/")
    assert listed(request)["driver"] is None


def test_a_listed_trip_left_to_the_api_s_renderer_is_written_as_the_trip_itself(
    rider, driver, make_trip
):
    now = timezone.now()
    trip = make_trip(rider, driver=driver, status="COMPLETED", accepted_at=now, completed_at=now)
    trip.refresh_from_db()
    (row,) = [row for row in VisibleTrips(rider) if row.id == trip.id]
    render = JSONRenderer().render

    assert render(trip_representation(row, in_utc)) == render(trip_representation(trip))
    # The renderer writes a time with its zone's offset: the list's are in UTC.
    paris = now.astimezone(ZoneInfo("Europe/Paris"))
    assert render({"at": in_utc(paris)}) == render({"at": trip_representation(trip)["accepted_at"]})
