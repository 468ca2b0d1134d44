"""The trips' and trail points' foreign keys lose the single-column indexes Django made
for them: the composite indexes `trip_rider_created`, `trip_driver_created` and
`trail_trip_measured` lead with the same columns and serve the same lookups, and every
trip step wrote to all of them.

Written by hand: the `AlterField` that `makemigrations` writes for `db_index=False`
drops every single-column index on the column that is not a `Meta.indexes` entry,
which on PostgreSQL includes the partial unique indexes of `trip_one_active_per_rider`
and `trip_one_active_per_driver`, the constraints that settle racing requests and
accepts. Here the model state changes and only the three indexes are dropped.
"""

from django.conf import settings
from django.db import migrations, models

# Django's names for the indexes `ForeignKey(db_index=True)` made in 0001 and 0002:
# a hash of the table and column, the same on every database.
DUPLICATES = (
    ("trips_trip", "rider_id", "trips_trip_rider_id_f8a8505d"),
    ("trips_trip", "driver_id", "trips_trip_driver_id_26500acf"),
    ("trips_trailpoint", "trip_id", "trips_trailpoint_trip_id_89b61b0f"),
)


class Migration(migrations.Migration):
    dependencies = [
        ("trips", "0002_trail"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
                )
                for table, column, index in DUPLICATES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="trailpoint",
                    name="trip",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="trail",
                        to="trips.trip",
                    ),
                ),
                migrations.AlterField(
                    model_name="trip",
                    name="driver",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.PROTECT,
                        related_name="trips_as_driver",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="trip",
                    name="rider",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.PROTECT,
                        related_name="trips_as_rider",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        )
    ]
