"""Who is at the other end of a WebSocket handshake.

`?token=` (an access JWT, the course's way) and `?ticket=` (a one-time ticket) take
precedence over the session cookie, which is only looked up without them; a token or
ticket that does not check out leaves the socket anonymous, so the consumer refuses the
handshake. The result is `scope["user"]` and `scope["auth"]`, which says when the
credentials expire and which log-in session they belong to.

A token is checked here only as far as it can be without I/O (signature, type, expiry),
on the event loop: the socket is then anonymous but for `scope["claims"]`, and the
consumer confirms the token's session and user (`token_user_and_trips`) in the thread
hop in which it reads the socket's state, one hop for the handshake instead of two
(docs/benchmarks.md, finding 54). Anything that does not know of the claims sees an
anonymous socket.
"""

from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from accounts import sessions
from accounts.authentication import RevocableJWTAuthentication
from accounts.models import User
from accounts.selectors import user_active
from realtime.database import db
from realtime.tickets import ticket_redeem
from trips.models import Trip
from trips.selectors import trips_active_for, user_with_active_trips


@dataclass(frozen=True)
class SocketAuth:
    session_id: str | None = None
    expires_at: float | None = None


class TokenClaims:
    """An access token that checked out on its own, and who it says the socket is; its
    session and its user are still to be confirmed (`token_user_and_trips`).

    The scope is copied on its way to the consumer, and every copy lasts as long as the
    socket: the token is taken from the claims once (`take`), so that none keeps it."""

    __slots__ = ("_token", "user_id")

    def __init__(self, token: Token, user_id: int):
        self._token: Token | None = token
        self.user_id = user_id

    def take(self) -> Token:
        token, self._token = self._token, None
        if token is None:
            raise RuntimeError("These claims' token was taken already.")
        return token


_authentication = RevocableJWTAuthentication()


def _token_claims(raw: str) -> tuple[TokenClaims, SocketAuth] | None:
    """No I/O: simplejwt's own checks of the token (signature, type, expiry)."""
    try:
        token = _authentication.token_checked(raw)
    except (InvalidToken, TokenError):
        return None
    user_id = token.get(api_settings.USER_ID_CLAIM)
    if user_id is None:
        return None
    auth = SocketAuth(token.get(sessions.SESSION_CLAIM), float(token["exp"]))
    return TokenClaims(token, user_id), auth


def token_user_and_trips(token: Token) -> tuple[User, list[Trip]] | None:
    """The token's user, unless its session was logged out or the user is gone or
    inactive (simplejwt's checks of a token's user), and the trips that still concern
    them, read with the user in one statement (docs/benchmarks.md, finding 67). Reads
    the database."""
    try:
        _authentication.session_check(token)
        if _authentication.reads_user_its_own_way():
            user = _authentication.get_user(token)
            return user, trips_active_for(user)
        user, trips = user_with_active_trips(_authentication.user_id_of(token))
        return _authentication.user_confirmed(user), trips
    except (InvalidToken, AuthenticationFailed, TokenError):
        return None


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
    they do not check out (and for a token that does, its `claims`); None without
    either."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "token" in query:
        checked = _token_claims(query["token"][0])
        if checked is not None:
            claims, auth = checked
            return {"user": AnonymousUser(), "auth": auth, "claims": claims}
        found = None
    elif "ticket" in query:
        found = await _from_ticket(query["ticket"][0])
    else:
        return None
    user, auth = found or (AnonymousUser(), SocketAuth())
    return {"user": user, "auth": auth}
