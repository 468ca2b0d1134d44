from rest_framework import serializers

from accounts.serializers import UserSerializer
from trips.models import Trip


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
