from rest_framework import serializers


class DriverStatusSerializer(serializers.Serializer):
    online = serializers.BooleanField()


class PositionReportSerializer(serializers.Serializer):
    """Documents a position report; the position rules check it (dispatch.positions)."""

    lat = serializers.FloatField()
    lng = serializers.FloatField()
    heading = serializers.FloatField(required=False, allow_null=True)
    speed = serializers.FloatField(required=False, allow_null=True)
    accuracy = serializers.FloatField(required=False, allow_null=True)
    timestamp = serializers.CharField(
        required=False, allow_null=True, help_text="Unix seconds or ISO 8601 with an offset."
    )
