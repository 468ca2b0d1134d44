from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import services
from dispatch.serializers import DriverStatusSerializer, PositionReportSerializer


class DriverOnlineView(APIView):
    """Over REST a driver is open for requests while their positions keep arriving;
    going online checks that they may."""

    @extend_schema(request=None, responses=DriverStatusSerializer)
    def post(self, request):
        services.driver_online_check(request.user)
        return Response({"online": True})


class DriverOfflineView(APIView):
    @extend_schema(request=None, responses=DriverStatusSerializer)
    def post(self, request):
        services.driver_online_check(request.user)
        services.driver_offline(driver=request.user)
        return Response({"online": False})


class DriverLocationView(APIView):
    @extend_schema(request=PositionReportSerializer, responses={202: None})
    def post(self, request):
        services.driver_position_report(driver=request.user, report=request.data)
        return Response(status=202)
