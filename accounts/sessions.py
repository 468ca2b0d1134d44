"""Log-in sessions that span JWT rotations, so that a log-out can end them everywhere.

Every token pair issued at log-in carries a random `sid` claim; simplejwt copies it into
each access token it derives and keeps it through refresh rotation. Logging out revokes
the sid: its refresh token is blacklisted by simplejwt, and its access tokens (which
simplejwt cannot blacklist) are refused by `is_revoked` until they would have expired.

With Redis the logged-out sessions are kept there, and each server process keeps a
copy (`accounts.revocations`); without it, in the process's own cache.
"""

import functools
import secrets
import time

from django.conf import settings
from django.core.cache import cache

from accounts.revocations import RevokedSessions

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
    seconds = int(lifetime.total_seconds()) + 60
    revoked = revoked_sessions()
    if revoked is None:
        cache.set(_key(sid), True, timeout=seconds)
    else:
        revoked.revoke(sid, until=time.time() + seconds)


def is_revoked(sid: str | None) -> bool:
    if not sid:
        return False
    revoked = revoked_sessions()
    if revoked is None:
        return cache.get(_key(sid), False)
    return revoked.is_revoked(sid)


@functools.cache
def revoked_sessions() -> RevokedSessions | None:
    """The process's logged-out sessions in Redis; None without Redis."""
    if not settings.REDIS_URL:
        return None
    return RevokedSessions(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
