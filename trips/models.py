import functools
import operator
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Cast


def _degrees(value: int) -> Cast:
    """`value` as a double-precision constant of a constraint. PostgreSQL reads a bare
    `-90.0` as a numeric constant and stores its conversion to double precision with
    the constraint, to be made again, through text, by every statement that writes a
    trip; a string cast to the type is stored converted (docs/benchmarks.md,
    finding 91)."""
    return Cast(Value(str(value)), models.FloatField())


def _status_is(*statuses: str) -> Q:
    """The status is one of `statuses`, as comparisons: PostgreSQL stores `IN` as an
    array of the column's type, converted again by every statement that writes a
    trip."""
    return functools.reduce(operator.or_, (Q(status=status) for status in statuses))


def _coordinates_valid(lat: str, lng: str) -> Q:
    """Both `lat` and `lng` unset, or both set and in range. A check fails only when
    false, and a comparison with an unset value is neither true nor false, so the
    second case says that both are set."""
    return Q(**{f"{lat}__isnull": True, f"{lng}__isnull": True}) | Q(
        **{
            f"{lat}__isnull": False,
            f"{lng}__isnull": False,
            f"{lat}__gte": _degrees(-90),
            f"{lat}__lte": _degrees(90),
            f"{lng}__gte": _degrees(-180),
            f"{lng}__lte": _degrees(180),
        }
    )


class Trip(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "REQUESTED"
        STARTED = "STARTED"  # a driver accepted and is on the way
        IN_PROGRESS = "IN_PROGRESS"  # the rider is on board
        COMPLETED = "COMPLETED"
        CANCELED = "CANCELED"

    class CancelReason(models.TextChoices):
        RIDER = "rider", "Canceled by the rider"
        NO_DRIVER_FOUND = "no_driver_found", "No driver accepted in time"

    ACTIVE_STATUSES = (Status.REQUESTED, Status.STARTED, Status.IN_PROGRESS)
    DRIVER_ACTIVE_STATUSES = (Status.STARTED, Status.IN_PROGRESS)
    FINAL_STATUSES = (Status.COMPLETED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    pick_up_address = models.CharField(max_length=255)
    drop_off_address = models.CharField(max_length=255)
    pick_up_lat = models.FloatField(null=True, blank=True)
    pick_up_lng = models.FloatField(null=True, blank=True)
    drop_off_lat = models.FloatField(null=True, blank=True)
    drop_off_lng = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    # No index of their own: the (party, created) indexes below lead with them. Every
    # trip step writes to each of the table's indexes (a status change is never a
    # heap-only update), so an index that duplicates another's lead costs every step.
    rider = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="trips_as_rider",
        db_index=False,
    )
    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="trips_as_driver",
        db_index=False,
    )
    # When each status was last entered.
    requested_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=20, choices=CancelReason.choices, blank=True)
    # The client's own id for its request, so that a retried request makes one trip.
    request_id = models.CharField(max_length=64, blank=True)
    distance_m = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "-created"], name="trip_status_created"),
            models.Index(fields=["rider", "-created"], name="trip_rider_created"),
            models.Index(fields=["driver", "-created"], name="trip_driver_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["rider"],
                condition=Q(status__in=["REQUESTED", "STARTED", "IN_PROGRESS"]),
                name="trip_one_active_per_rider",
            ),
            models.UniqueConstraint(
                fields=["driver"],
                condition=Q(status__in=["STARTED", "IN_PROGRESS"]),
                name="trip_one_active_per_driver",
            ),
            models.UniqueConstraint(
                fields=["rider", "request_id"],
                condition=~Q(request_id=""),
                name="trip_request_id_unique_per_rider",
            ),
            models.CheckConstraint(
                condition=Q(status="REQUESTED", driver__isnull=True)
                | Q(_status_is("STARTED", "IN_PROGRESS", "COMPLETED"), driver__isnull=False)
                | Q(status="CANCELED"),
                name="trip_driver_matches_status",
            ),
            models.CheckConstraint(
                condition=_coordinates_valid("pick_up_lat", "pick_up_lng"),
                name="trip_pick_up_coordinates_valid",
            ),
            models.CheckConstraint(
                condition=_coordinates_valid("drop_off_lat", "drop_off_lng"),
                name="trip_drop_off_coordinates_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pick_up_address} → {self.drop_off_address} ({self.status})"

    @property
    def has_pick_up_point(self) -> bool:
        return self.pick_up_lat is not None and self.pick_up_lng is not None


class TrailSegment(models.Model):
    """A stretch of a trip's trail: the driver's positions while the trip was active, as
    its driver's socket wrote them together. A row a point was most of the trail's cost
    to PostgreSQL, and of its size on disk (docs/benchmarks.md, finding 100)."""

    # Indexed by `trail_segment_trip`.
    trip = models.ForeignKey(
        Trip, on_delete=models.CASCADE, related_name="trail_segments", db_index=False
    )
    # A list of points, each `[lat, lng, heading, speed, accuracy, measured_at]`:
    # `measured_at` in seconds since the epoch, as the driver's device gave it; heading,
    # speed and accuracy null where it gave none (`trips.trail` reads them).
    points = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["trip"], name="trail_segment_trip")]

    def __str__(self) -> str:
        return f"{len(self.points)} points of trip {self.trip_id}"
