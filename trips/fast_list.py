"""The trip list's fast path: `GET /api/trip/` with an access token, answered without
Django's request handling.

Riders' and drivers' apps poll their trip list, and a request to it through Django and
DRF spent most of its CPU around the page rather than on it: Django's ASGI handler, its
middleware, DRF's request, content negotiation and rendering, with three thread hops
(docs/benchmarks.md, finding 68). The fast path makes the token's checks on the event
loop, confirms its session and reads the page in one hop (the page's own statement
confirms the token's user: finding 70), and writes the body the viewset would
(`trips.api.trips_listed`, DRF's own paginator, the API's renderer) with the headers
Django's middleware would add.

It answers only what it knows Django would answer 200 in this way: a request it does
not fully understand (another method, a cookie, an odd query or `Accept`, a host not
allowed, a request Django would redirect to HTTPS) or whose token, session or user does
not check out goes to Django untouched, which answers it as it always has, refusals
included. So that nothing else about a response can change unseen, the path stands
aside for good when the settings it mirrors are not the ones it knows. A failure while
it reads (the database gone) is answered and logged by uvicorn (a plain 500), not by
Django's handler.
"""

import logging
import re
from urllib.parse import parse_qsl

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import IsAuthenticated
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.authentication import RevocableJWTAuthentication
from accounts.selectors import user_by_id
from accounts.services import ROLE_CLAIM
from config.renderers import JSONRenderer
from realtime.database import db
from trips.api import TripPagination, TripViewSet, trips_listed
from trips.models import Trip
from trips.selectors import ClaimedUser, UserNotConfirmed, VisibleTrips

logger = logging.getLogger(__name__)

PATH = "/api/trip/"
# The middleware whose effect on this response the path writes itself
# (`ListAsked.headers`).
MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
# What DRF's content negotiation answers with JSON: no `Accept`, anything, JSON, and
# what the course's Angular and React clients send (their HTTP libraries' default).
JSON_ACCEPTED = {None, b"*/*", b"application/json", b"application/json, text/plain, */*"}
# Only limits, offsets and statuses, each once, in plain digits and letters.
_QUERY = re.compile(rb"(?:(?:limit|offset|status)=[0-9A-Z_]{0,12}(?:&|$))*")
_HEADERS_READ = {b"host", b"authorization", b"accept", b"content-length"}
# Headers whose presence sends a request to Django: a body in chunks, cookies (a
# malformed CSRF cookie is answered with a new one), a host only settings say to read.
_HEADERS_REFUSED = {b"transfer-encoding", b"cookie", b"x-forwarded-host"}

_authentication = RevocableJWTAuthentication()
_renderer = JSONRenderer()


class TripListFastPath:
    """ASGI: the trip list's fast path in front of Django's HTTP handler."""

    def __init__(self, django):
        self.django = django
        reasons = reasons_to_stand_aside()
        self.enabled = not reasons
        if reasons:
            logger.warning("The trip list's fast path stands aside: %s.", "; ".join(reasons))

    async def __call__(self, scope, receive, send):
        if self.enabled:
            asked = ListAsked.of(scope)
            if asked is not None:
                body = await _body_for(asked)
                if body is not None:
                    headers = asked.headers(body)
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.django(scope, receive, send)


def reasons_to_stand_aside() -> list[str]:
    """What in the settings would make Django's answer differ from the path's."""
    reasons = []
    if tuple(settings.MIDDLEWARE) != MIDDLEWARE:
        reasons.append("MIDDLEWARE is not the one whose headers it writes")
    view = TripViewSet
    if view.authentication_classes[:1] != [RevocableJWTAuthentication]:
        reasons.append("the trip list's first authentication is not by token")
    if view.permission_classes != [IsAuthenticated]:
        reasons.append("the trip list's permissions are not IsAuthenticated alone")
    if view.throttle_classes or view.versioning_class is not None:
        reasons.append("the trip list is throttled or versioned")
    if view.renderer_classes[:1] != [JSONRenderer] or view.pagination_class is not TripPagination:
        reasons.append("the trip list renders or pages otherwise")
    if RevocableJWTAuthentication.reads_user_its_own_way():
        reasons.append("simplejwt checks its own revocation")
    if jwt_settings.AUTH_HEADER_TYPES != ("Bearer",):
        reasons.append("SIMPLE_JWT's AUTH_HEADER_TYPES is not Bearer")
    if settings.USE_X_FORWARDED_HOST or settings.FORCE_SCRIPT_NAME:
        reasons.append("the host or the script name come from the settings")
    if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
        reasons.append("CommonMiddleware refuses or redirects requests")
    return reasons


class ListAsked:
    """A request for the trip list that the path answers, if its token holds."""

    __slots__ = ("query", "secure", "token", "url")

    def __init__(self, token, query: dict[str, str], secure: bool, url: str):
        self.token = token
        self.query = query
        self.secure = secure
        self.url = url

    @classmethod
    def of(cls, scope) -> "ListAsked | None":
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] != PATH
            or scope.get("root_path")
        ):
            return None
        headers = _headers_of(scope)
        if (
            headers is None
            or headers.get(b"accept") not in JSON_ACCEPTED
            or headers.get(b"content-length", b"0") != b"0"
        ):
            return None
        host = headers.get(b"host", b"").decode("latin-1")
        query = _query_of(scope.get("query_string", b""))
        token = _token_of(headers.get(b"authorization"))
        if query is None or token is None or not _host_allowed(host):
            return None
        scheme = _scheme_of(scope, headers)
        if settings.SECURE_SSL_REDIRECT and scheme != "https":
            return None
        query_string = scope["query_string"].decode("ascii")
        url = f"{scheme}://{host}{PATH}" + (f"?{query_string}" if query_string else "")
        return cls(token, query, scheme == "https", url)

    def build_absolute_uri(self) -> str:
        """As Django's request has it, for DRF's paginator to write its links from."""
        return self.url

    @property
    def query_params(self) -> dict[str, str]:
        return self.query

    @property
    def status(self) -> str | None:
        return self.query.get("status")

    def headers(self, body: bytes) -> list[tuple[bytes, bytes]]:
        """What DRF's response and Django's middleware give a JSON answer."""
        return [
            (b"content-type", b"application/json"),
            (b"vary", b"Accept"),
            (b"allow", _ALLOWED),
            (b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()),
            (b"content-length", str(len(body)).encode()),
            *_security(self.secure),
        ]


# The list route's methods: the router binds GET and POST, and DRF adds HEAD and OPTIONS.
_ALLOWED = b"GET, POST, HEAD, OPTIONS"


def _headers_of(scope) -> dict[bytes, bytes] | None:
    """The headers the path reads, None if any it reads comes twice or one it
    refuses comes at all."""
    read = {}
    proxy = _proxy_ssl_header()
    for name, value in scope["headers"]:
        if name in _HEADERS_REFUSED:
            return None
        if name in _HEADERS_READ or name == proxy:
            if name in read:
                return None
            read[name] = value
    return read


def _query_of(raw: bytes) -> dict[str, str] | None:
    """The query, if it is one the path answers as DRF would: a limit of 1 or more, an
    offset, a status, each at most once, in plain digits or a known status."""
    if not _QUERY.fullmatch(raw):
        return None
    pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs):
        return None
    limit, offset, status = (query.get(name) for name in ("limit", "offset", "status"))
    if limit is not None and not (limit.isdigit() and int(limit) >= 1):
        return None
    if offset is not None and not offset.isdigit():
        return None
    if status is not None and status not in Trip.Status.values:
        return None
    return query


def _token_of(authorization: bytes | None):
    """The access token, checked as far as it can be without I/O (signature, type,
    expiry), or None."""
    if authorization is None:
        return None
    parts = authorization.split()
    if len(parts) != 2 or parts[0] != b"Bearer":
        return None
    try:
        return _authentication.token_checked(parts[1])
    except (InvalidToken, TokenError):
        return None


def _host_allowed(host: str) -> bool:
    """Whether Django takes the host (`HttpRequest.get_host`)."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def _proxy_ssl_header() -> bytes | None:
    if not settings.SECURE_PROXY_SSL_HEADER:
        return None
    meta_name, _value = settings.SECURE_PROXY_SSL_HEADER
    return meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")


def _scheme_of(scope, headers: dict[bytes, bytes]) -> str:
    """The scheme as Django's request has it (`HttpRequest.scheme`)."""
    proxy = _proxy_ssl_header()
    if proxy is not None and proxy in headers:
        _meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = headers[proxy].decode("latin-1").split(",", 1)[0]
        return "https" if value.strip() == secure_value else "http"
    return scope.get("scheme", "http")


def _security(secure: bool) -> list[tuple[bytes, bytes]]:
    """SecurityMiddleware's headers on a response that sets none of them."""
    headers = []
    if settings.SECURE_HSTS_SECONDS and secure:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        if isinstance(policy, str):
            policy = [value.strip() for value in policy.split(",")]
        headers.append((b"referrer-policy", ",".join(policy).encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        opener = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
        headers.append((b"cross-origin-opener-policy", opener.encode()))
    return headers


@db
def _body_for(asked: ListAsked) -> bytes | None:
    """The list's body, read and rendered in one thread hop; None if the token's
    session or user does not hold (Django then refuses the request its way)."""
    try:
        _authentication.session_check(asked.token)
        data = trips_listed(_visible_trips(asked), TripPagination(), asked)
    except (InvalidToken, AuthenticationFailed, TokenError, UserNotConfirmed):
        return None
    return _renderer.render(data, "application/json")


def _visible_trips(asked: ListAsked) -> VisibleTrips:
    """The trips the token's user sees. The user is who the token's claims say (their
    id, and their role as the course's clients read it), confirmed by the read of the
    trips itself; a token without the role reads its user first."""
    user_id = _authentication.user_id_of(asked.token)
    role = asked.token.get(ROLE_CLAIM)
    if isinstance(role, str):
        return VisibleTrips(ClaimedUser(user_id, role), asked.status, unread=True)
    user = _authentication.user_confirmed(user_by_id(user_id))
    return VisibleTrips(user, asked.status)
