from rest_framework import serializers

from accounts.serializers import UserSerializer
from trips.models import TrailPoint, Trip


class TripSerializer(serializers.ModelSerializer):
    """A trip with its rider and driver nested: the shape both REST and events use."""

    rider = UserSerializer(read_only=True)
    driver = UserSerializer(read_only=True, allow_null=True)

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


class TrailPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrailPoint
        fields = ["lat", "lng", "heading", "speed", "accuracy", "measured_at"]
        read_only_fields = fields
