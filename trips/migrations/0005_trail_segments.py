"""The trail is stored in segments, a row a write of the driver's socket, instead of a
row a point (docs/benchmarks.md, finding 100).

The points already stored are copied into segments of at most `SEGMENT_POINTS`, in
the order they were measured, and their table dropped; going back copies them out
again. The copy reads the points through the ORM, a trip after another.
"""

from datetime import UTC, datetime
from itertools import groupby

import django.db.models.deletion
from django.db import migrations, models

SEGMENT_POINTS = 1_000
# Rows read from the database at a time, and segments written at a time.
ROWS_READ = 2_000
SEGMENTS_WRITTEN = 200


def points_into_segments(apps, schema_editor):
    TrailPoint = apps.get_model("trips", "TrailPoint")
    TrailSegment = apps.get_model("trips", "TrailSegment")
    stored = (
        TrailPoint.objects.order_by("trip_id", "measured_at", "id")
        .values_list("trip_id", "lat", "lng", "heading", "speed", "accuracy", "measured_at")
        .iterator(chunk_size=ROWS_READ)
    )
    segments = []
    for trip_id, points in groupby(stored, key=lambda point: point[0]):
        trail = [[*values, measured_at.timestamp()] for _, *values, measured_at in points]
        segments += (
            TrailSegment(trip_id=trip_id, points=trail[start : start + SEGMENT_POINTS])
            for start in range(0, len(trail), SEGMENT_POINTS)
        )
        if len(segments) >= SEGMENTS_WRITTEN:
            TrailSegment.objects.bulk_create(segments)
            segments = []
    TrailSegment.objects.bulk_create(segments)


def segments_into_points(apps, schema_editor):
    TrailPoint = apps.get_model("trips", "TrailPoint")
    TrailSegment = apps.get_model("trips", "TrailSegment")
    segments = TrailSegment.objects.order_by("id").iterator(chunk_size=SEGMENTS_WRITTEN)
    for segment in segments:
        TrailPoint.objects.bulk_create(
            TrailPoint(
                trip_id=segment.trip_id,
                lat=lat,
                lng=lng,
                heading=heading,
                speed=speed,
                accuracy=accuracy,
                measured_at=datetime.fromtimestamp(measured_at, UTC),
            )
            for lat, lng, heading, speed, accuracy, measured_at in segment.points
        )


class Migration(migrations.Migration):
    dependencies = [
        ("trips", "0004_coordinates_checks_both_or_neither"),
    ]

    operations = [
        migrations.CreateModel(
            name="TrailSegment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("points", models.JSONField()),
                (
                    "trip",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="trail_segments",
                        to="trips.trip",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["trip"], name="trail_segment_trip")],
            },
        ),
        migrations.RunPython(points_into_segments, segments_into_points),
        migrations.DeleteModel(name="TrailPoint"),
    ]
