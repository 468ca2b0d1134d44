"""Who is at the other end of a WebSocket handshake.

`?token=` (an access JWT, the course's way) and `?ticket=` (a one-time ticket) take
precedence over the session cookie, which is only looked up without them; a token or
ticket that does not check out leaves the socket anonymous, so the consumer refuses the
handshake. The result is `scope["user"]`
and `scope["auth"]`, which says when the credentials expire and which log-in session
they belong to.
"""

from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts import sessions
from accounts.authentication import RevocableJWTAuthentication
from accounts.models import User
from accounts.selectors import user_active
from realtime.database import db
from realtime.tickets import ticket_redeem


@dataclass(frozen=True)
class SocketAuth:
    session_id: str | None = None
    expires_at: float | None = None


@db
def _from_token(raw: str) -> tuple[User, SocketAuth] | None:
    authentication = RevocableJWTAuthentication()
    try:
        token = authentication.get_validated_token(raw)
        user = authentication.get_user(token)
    except (InvalidToken, AuthenticationFailed, TokenError):
        return None
    return user, SocketAuth(token.get(sessions.SESSION_CLAIM), float(token["exp"]))


@db
def _from_ticket(ticket: str) -> tuple[User, SocketAuth] | None:
    grant = ticket_redeem(ticket)
    if grant is None or sessions.is_revoked(grant.session_id):
        return None
    user = user_active(grant.user_id)
    if user is None:
        return None
    return user, SocketAuth(grant.session_id, grant.expires_at)


class _WebSessionAuth(BaseMiddleware):
    """Inside Channels' session stack, which has set the cookie's user: the session."""

    async def __call__(self, scope, receive, send):
        session = scope.get("session")
        session_key = session.session_key if session is not None else None
        scope = {**scope, "auth": SocketAuth(session_id=sessions.web_session_id(session_key))}
        return await super().__call__(scope, receive, send)


class SocketAuthMiddleware:
    """A token or a ticket decides who the socket is; without either, the session
    cookie does. Sockets with a token never pay for a session lookup."""

    def __init__(self, inner):
        self.inner = inner
        self.by_cookie = AuthMiddlewareStack(_WebSessionAuth(inner))

    async def __call__(self, scope, receive, send):
        # This frame lasts as long as the socket: what it holds, every socket holds
        # (docs/benchmarks.md, finding 47), so the query is read in another.
        credentials = await _credentials(scope)
        if credentials is None:
            return await self.by_cookie(scope, receive, send)
        return await self.inner({**scope, **credentials}, receive, send)


async def _credentials(scope) -> dict | None:
    """The socket's `user` and `auth` from its `?token=` or `?ticket=`, anonymous if
    they do not check out; None without either."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "token" in query:
        found = await _from_token(query["token"][0])
    elif "ticket" in query:
        found = await _from_ticket(query["ticket"][0])
    else:
        return None
    user, auth = found or (AnonymousUser(), SocketAuth())
    return {"user": user, "auth": auth}
