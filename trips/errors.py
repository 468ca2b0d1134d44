"""Refusals of the trip rules. Each carries the trip when its user may see it, so that
a course client can be answered with the trip's authoritative state."""

from rest_framework import status

from config.exceptions import DomainError


class TripError(DomainError):
    # Whether the service confirmed the user's rights before refusing: a caller that
    # acted on a copy of the user need not read them again to know the refusal stands.
    rights_confirmed = False

    def __init__(self, message: str, *, trip=None):
        super().__init__(message)
        self.trip = trip

    def context(self) -> dict:
        from trips.events import trip_payload

        return {"trip": trip_payload(self.trip)} if self.trip is not None else {}


class TripNotFound(TripError):
    code = "trip_not_found"
    http_status = status.HTTP_404_NOT_FOUND


class RoleRequired(TripError):
    code = "wrong_role"
    http_status = status.HTTP_403_FORBIDDEN


class NotYourTrip(TripError):
    code = "not_your_trip"
    http_status = status.HTTP_403_FORBIDDEN


class RiderHasActiveTrip(TripError):
    code = "rider_has_active_trip"
    http_status = status.HTTP_409_CONFLICT


class RightsChanged(TripError):
    """The user's rights changed between their read and the change made with them."""

    code = "rights_changed"
    http_status = status.HTTP_409_CONFLICT


class DriverBusy(TripError):
    code = "driver_busy"
    http_status = status.HTTP_409_CONFLICT


class DriverNotApproved(TripError):
    code = "driver_not_approved"
    http_status = status.HTTP_403_FORBIDDEN


class TripNotAvailable(TripError):
    """Another driver accepted first, or the rider canceled."""

    code = "trip_not_available"
    http_status = status.HTTP_409_CONFLICT


class StatusOutOfOrder(TripError):
    code = "status_out_of_order"
    http_status = status.HTTP_409_CONFLICT


class FieldNotAllowed(TripError):
    """The client tried to set a field only the server may set."""

    code = "field_not_allowed"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, field: str, trip=None):
        super().__init__(message, trip=trip)
        self.field = field
