"""The trips' check constraints, as the model now has them.

- A trip's pick-up and drop-off points are both coordinates or neither: the checks
  took a point with one of them unset (a comparison with NULL fails no check). The API
  and the sockets never wrote one; any row that has one stops this migration.
- The same rules, with constants PostgreSQL need not convert in every statement that
  writes a trip: bounds of double precision instead of numeric ones, and statuses
  compared one by one instead of in an array of the column's type
  (docs/benchmarks.md, finding 91).

Adding a check reads the whole table under an exclusive lock, as the first migration's
did.
"""

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trips', '0003_foreign_keys_indexed_by_composites'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='trip',
            name='trip_driver_matches_status',
        ),
        migrations.RemoveConstraint(
            model_name='trip',
            name='trip_pick_up_coordinates_valid',
        ),
        migrations.RemoveConstraint(
            model_name='trip',
            name='trip_drop_off_coordinates_valid',
        ),
        migrations.AddConstraint(
            model_name='trip',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('driver__isnull', True), ('status', 'REQUESTED')), models.Q(models.Q(('status', 'STARTED'), ('status', 'IN_PROGRESS'), ('status', 'COMPLETED'), _connector='OR'), ('driver__isnull', False)), ('status', 'CANCELED'), _connector='OR'), name='trip_driver_matches_status'),
        ),
        migrations.AddConstraint(
            model_name='trip',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('pick_up_lat__isnull', True), ('pick_up_lng__isnull', True)), models.Q(('pick_up_lat__gte', django.db.models.functions.comparison.Cast(models.Value('-90'), models.FloatField())), ('pick_up_lat__isnull', False), ('pick_up_lat__lte', django.db.models.functions.comparison.Cast(models.Value('90'), models.FloatField())), ('pick_up_lng__gte', django.db.models.functions.comparison.Cast(models.Value('-180'), models.FloatField())), ('pick_up_lng__isnull', False), ('pick_up_lng__lte', django.db.models.functions.comparison.Cast(models.Value('180'), models.FloatField()))), _connector='OR'), name='trip_pick_up_coordinates_valid'),
        ),
        migrations.AddConstraint(
            model_name='trip',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('drop_off_lat__isnull', True), ('drop_off_lng__isnull', True)), models.Q(('drop_off_lat__gte', django.db.models.functions.comparison.Cast(models.Value('-90'), models.FloatField())), ('drop_off_lat__isnull', False), ('drop_off_lat__lte', django.db.models.functions.comparison.Cast(models.Value('90'), models.FloatField())), ('drop_off_lng__gte', django.db.models.functions.comparison.Cast(models.Value('-180'), models.FloatField())), ('drop_off_lng__isnull', False), ('drop_off_lng__lte', django.db.models.functions.comparison.Cast(models.Value('180'), models.FloatField()))), _connector='OR'), name='trip_drop_off_coordinates_valid'),
        ),
    ]
