from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import sessions
from realtime.tickets import TicketGrant, ticket_issue


class WebSocketTicketView(APIView):
    """A one-time ticket that opens one socket: `ws://HOST/taxi/?ticket=...`."""

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "WebSocketTicket",
            {"ticket": serializers.CharField(), "expires_in": serializers.IntegerField()},
        ),
    )
    def post(self, request):
        token = request.auth  # the access token, or None for a web session
        if token is not None:
            session_id, expires_at = token.get(sessions.SESSION_CLAIM), float(token["exp"])
        else:
            session_id, expires_at = sessions.web_session_id(request.session.session_key), None
        ticket = ticket_issue(
            grant=TicketGrant(request.user.pk, session_id=session_id, expires_at=expires_at)
        )
        return Response({"ticket": ticket, "expires_in": settings.WEBSOCKET_TICKET_SECONDS})
