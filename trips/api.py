from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.pagination import LimitOffsetPagination

from trips.models import Trip
from trips.selectors import trips_visible_to
from trips.serializers import TripListQuerySerializer, TripSerializer


class TripPagination(LimitOffsetPagination):
    """Pages only when asked (`?limit=`): the course's clients expect a plain array."""

    max_limit = 100


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("status", enum=Trip.Status.values)])
)
class TripViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = TripSerializer
    pagination_class = TripPagination
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        trips = trips_visible_to(self.request.user)
        if self.action == "list":
            query = TripListQuerySerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            if status := query.validated_data.get("status"):
                trips = trips.filter(status=status)
        return trips.order_by("-created")
