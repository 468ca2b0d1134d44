from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts import sessions


class RevocableJWTAuthentication(JWTAuthentication):
    """simplejwt's checks (signature, type, expiry, active user) plus log-out."""

    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        if sessions.is_revoked(token.get(sessions.SESSION_CLAIM)):
            raise InvalidToken({"detail": _("This session has been logged out.")})
        return token
