from datetime import UTC, datetime

from rest_framework import serializers

from accounts.serializers import UserSerializer, user_representation
from trips.models import Trip
from trips.selectors import ListedTrip


def _moment(value: datetime | None) -> str | None:
    """A time as DRF writes it: ISO 8601 in UTC, with "Z"."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def in_utc(value: datetime | None) -> datetime | None:
    """A time left for the API's renderer to write: in UTC, it writes one as `_moment`
    does, in a fraction of the time (config.renderers)."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


def _person(user) -> dict | None:
    return None if user is None else user_representation(user)


def trip_representation(trip: "Trip | ListedTrip", times=_moment) -> dict:
    """The trip as every client reads it, built directly: it is made for every event,
    snapshot and listed trip, and DRF's field machinery costs some 30 times more. A
    list reads its trips as rows (`ListedTrip`), with the same attributes.

    `times` writes its times: as text, for events, which the channel layer carries as
    they are; the REST API leaves them to its renderer (`in_utc`)."""
    return {
        "id": str(trip.id),
        "created": times(trip.created),
        "updated": times(trip.updated),
        "pick_up_address": trip.pick_up_address,
        "drop_off_address": trip.drop_off_address,
        "pick_up_lat": trip.pick_up_lat,
        "pick_up_lng": trip.pick_up_lng,
        "drop_off_lat": trip.drop_off_lat,
        "drop_off_lng": trip.drop_off_lng,
        "status": trip.status,
        "rider": _person(trip.rider),
        "driver": _person(trip.driver),
        "requested_at": times(trip.requested_at),
        "accepted_at": times(trip.accepted_at),
        "picked_up_at": times(trip.picked_up_at),
        "completed_at": times(trip.completed_at),
        "canceled_at": times(trip.canceled_at),
        "cancel_reason": trip.cancel_reason,
        "distance_m": trip.distance_m,
    }


class TripSerializer(serializers.ModelSerializer):
    """A trip with its rider and driver nested: the shape both REST and events use.

    The fields document the shape (OpenAPI); `trip_representation` renders it."""

    rider = UserSerializer(read_only=True)
    driver = UserSerializer(read_only=True, allow_null=True)

    def to_representation(self, instance):
        return trip_representation(instance)

    class Meta:
        model = Trip
        fields = [
            "id",
            "created",
            "updated",
            "pick_up_address",
            "drop_off_address",
            "pick_up_lat",
            "pick_up_lng",
            "drop_off_lat",
            "drop_off_lng",
            "status",
            "rider",
            "driver",
            "requested_at",
            "accepted_at",
            "picked_up_at",
            "completed_at",
            "canceled_at",
            "cancel_reason",
            "distance_m",
        ]
        read_only_fields = fields


class TripListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Trip.Status.choices, required=False)


class TripRequestSerializer(serializers.Serializer):
    """What a rider may say when requesting a trip (REST and both socket protocols)."""

    pick_up_address = serializers.CharField(max_length=255)
    drop_off_address = serializers.CharField(max_length=255)
    pick_up_lat = serializers.FloatField(min_value=-90, max_value=90, required=False)
    pick_up_lng = serializers.FloatField(min_value=-180, max_value=180, required=False)
    drop_off_lat = serializers.FloatField(min_value=-90, max_value=90, required=False)
    drop_off_lng = serializers.FloatField(min_value=-180, max_value=180, required=False)
    request_id = serializers.CharField(max_length=64, required=False, allow_blank=False)

    def validate(self, attrs):
        for point in ("pick_up", "drop_off"):
            given = [f"{point}_{axis}" in attrs for axis in ("lat", "lng")]
            if any(given) and not all(given):
                missing = f"{point}_lng" if given[0] else f"{point}_lat"
                raise serializers.ValidationError({missing: ["Give both lat and lng, or neither."]})
        return attrs


class TripAdvanceSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[Trip.Status.IN_PROGRESS, Trip.Status.COMPLETED])


class TrailPointSerializer(serializers.Serializer):
    """A point of a trip's trail (`trips.trail.TrailPoint`)."""

    lat = serializers.FloatField(read_only=True)
    lng = serializers.FloatField(read_only=True)
    heading = serializers.FloatField(read_only=True, allow_null=True)
    speed = serializers.FloatField(read_only=True, allow_null=True)
    accuracy = serializers.FloatField(read_only=True, allow_null=True)
    measured_at = serializers.DateTimeField(read_only=True)
