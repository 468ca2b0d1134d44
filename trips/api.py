import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from trips import errors, services
from trips.models import Trip
from trips.selectors import VisibleTrips, trips_visible_to
from trips.serializers import (
    TrailPointSerializer,
    TripAdvanceSerializer,
    TripListQuerySerializer,
    TripRequestSerializer,
    TripSerializer,
    in_utc,
    trip_representation,
)
from trips.trail import trail_points


def trip_id_of(pk: str) -> uuid.UUID:
    """The trip id in the URL; the route lets through 36 hex digits and hyphens in any
    order, and what is no UUID names no trip."""
    try:
        return uuid.UUID(pk)
    except ValueError:
        raise errors.TripNotFound("No such trip.") from None


class TripPagination(LimitOffsetPagination):
    """Pages only when asked (`?limit=`): the course's clients expect a plain array.

    A page of `VisibleTrips` is read with their count in one statement, where DRF's
    paginator counts, then reads the page."""

    max_limit = 100

    def paginate_queryset(self, trips: VisibleTrips, request, view=None):
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        page, self.count = trips.page_counted(self.offset, self.limit)
        # As DRF's: the browsable API shows page links when there is more than a page.
        self.display_page_controls = self.count > self.limit and self.template is not None
        return page

    def page_body(self, listed: list) -> dict:
        """A page's body, as DRF's `get_paginated_response` has it, without the
        response around it, which the fast path would make only to let go of."""
        return {
            "count": self.count,
            "next": self.get_next_link(),
            "previous": self.get_previous_link(),
            "results": listed,
        }


def trips_listed(trips: VisibleTrips, paginator: TripPagination, request) -> list | dict:
    """The trip list's body: all the `trips`, or the page `request` asks `paginator`
    for with its count and links. The viewset and its fast path (`trips.fast_list`)
    both answer with it."""
    page = paginator.paginate_queryset(trips, request)
    listed = [trip_representation(trip, in_utc) for trip in (trips if page is None else page)]
    return listed if page is None else paginator.page_body(listed)


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("status", enum=Trip.Status.values)])
)
class TripViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TripSerializer
    pagination_class = TripPagination
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return trips_visible_to(self.request.user)

    def list(self, request):
        status = None
        # Most lists filter nothing, and a serializer is a reference cycle (its fields
        # point back at it) that only the garbage collector frees (finding 53).
        if "status" in request.query_params:
            query = TripListQuerySerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
            status = query.validated_data.get("status")
        trips = VisibleTrips(request.user, status)
        return Response(trips_listed(trips, self.paginator, request))

    @extend_schema(
        request=TripRequestSerializer,
        responses={201: TripSerializer, 200: TripSerializer},
        description="Request a trip as the authenticated rider. A repeated `request_id` "
        "returns the trip the first request made (200) instead of making another.",
    )
    def create(self, request):
        form = TripRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        trip, created = services.trip_request(rider=request.user, **form.validated_data)
        return Response(
            TripSerializer(trip).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses=TripSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        trip = services.trip_accept(trip_id=trip_id_of(pk), driver=request.user)
        return Response(TripSerializer(trip).data)

    @extend_schema(request=TripAdvanceSerializer, responses=TripSerializer)
    @action(detail=True, methods=["post"])
    def advance(self, request, pk=None):
        form = TripAdvanceSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        trip = services.trip_advance(
            trip_id=trip_id_of(pk), driver=request.user, status=form.validated_data["status"]
        )
        return Response(TripSerializer(trip).data)

    @extend_schema(responses=TrailPointSerializer(many=True))
    @action(detail=True, methods=["get"])
    def trail(self, request, pk=None):
        """Where the driver went during the trip, oldest first."""
        trip = self.get_object()
        return Response(TrailPointSerializer(trail_points(trip.id), many=True).data)

    @extend_schema(request=None, responses=TripSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        trip = services.trip_cancel(trip_id=trip_id_of(pk), user=request.user)
        return Response(TripSerializer(trip).data)
