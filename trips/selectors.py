from django.db.models import Q, QuerySet

from accounts.models import User
from trips.models import Trip


def trips_visible_to(user: User) -> QuerySet[Trip]:
    """A rider sees their own trips; a driver sees trips open for requests and their own."""
    trips = Trip.objects.select_related("rider", "driver")
    if user.is_rider:
        return trips.filter(rider=user)
    if user.is_driver:
        return trips.filter(Q(status=Trip.Status.REQUESTED) | Q(driver=user))
    return trips.none()


def trips_active_for(user: User) -> QuerySet[Trip]:
    """The trips that still concern `user` as rider or driver (at most one each), in
    no order: every socket's handshake reads them, and an ORDER BY costs more to
    compile than sorting two trips."""
    return (
        Trip.objects.select_related("rider", "driver")
        .filter(Q(rider=user) | Q(driver=user), status__in=Trip.ACTIVE_STATUSES)
        .order_by()
    )
