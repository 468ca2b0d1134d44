from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts import services
from accounts.serializers import (
    LogInSerializer,
    LogOutSerializer,
    ProfileUpdateSerializer,
    SignUpSerializer,
    TokenPairSerializer,
    UserSerializer,
)

UPLOAD_PARSERS = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]


class SignUpView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    parser_classes = UPLOAD_PARSERS

    @extend_schema(request=SignUpSerializer, responses={201: UserSerializer})
    def post(self, request):
        form = SignUpSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = services.user_sign_up(
            username=data["username"],
            password=data["password1"],
            role=data["group"],
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            photo=data.get("photo"),
        )
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LogInThrottle(ScopedRateThrottle):
    def get_rate(self):
        # No rate means no limit (DRF's throttles let everything through then).
        return settings.LOGIN_THROTTLE_RATE or None


class LogInView(APIView):
    """Exchange a username and password for a JWT pair.

    DRF runs this sync view on a worker thread under ASGI, and hashlib releases the GIL
    while it hashes, so a log-in never holds up the event loop or other requests.
    """

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (LogInThrottle,)
    throttle_scope = "log_in"

    @extend_schema(request=LogInSerializer, responses={200: TokenPairSerializer})
    def post(self, request):
        form = LogInSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=form.validated_data["username"],
            password=form.validated_data["password"],
        )
        if user is None:
            return Response(
                {"__all__": ["Please enter a correct username and password."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(services.session_tokens_issue(user=user))


class LogOutView(APIView):
    @extend_schema(request=LogOutSerializer, responses={204: None})
    def post(self, request):
        form = LogOutSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.user_log_out(
            request=request, user=request.user, refresh=form.validated_data.get("refresh")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    parser_classes = UPLOAD_PARSERS

    @extend_schema(responses=UserSerializer)
    def get(self, request):
        return Response(UserSerializer(request.user).data)

    @extend_schema(request=ProfileUpdateSerializer, responses=UserSerializer)
    def patch(self, request):
        form = ProfileUpdateSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        user = services.user_profile_update(user=request.user, **form.validated_data)
        return Response(UserSerializer(user).data)
