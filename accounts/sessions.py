"""Log-in sessions that span JWT rotations, so that a log-out can end them everywhere.

Every token pair issued at log-in carries a random `sid` claim; simplejwt copies it into
each access token it derives and keeps it through refresh rotation. Logging out revokes
the sid: its refresh token is blacklisted by simplejwt, and its access tokens (which
simplejwt cannot blacklist) are refused by `is_revoked` until they would have expired.
"""

import secrets

from django.conf import settings
from django.core.cache import cache

SESSION_CLAIM = "sid"


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


def web_session_id(session_key: str | None) -> str | None:
    """The session id of a browser logged in with a cookie rather than a JWT."""
    return f"web-{session_key}" if session_key else None


def _key(sid: str) -> str:
    return f"revoked-session:{sid}"


def revoke(sid: str) -> None:
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
    cache.set(_key(sid), True, timeout=int(lifetime.total_seconds()) + 60)


def is_revoked(sid: str | None) -> bool:
    return bool(sid) and cache.get(_key(sid), False)
