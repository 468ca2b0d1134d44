"""Which web pages may open a socket.

Browsers always send `Origin` on a WebSocket handshake, so checking it stops other
sites from riding a user's cookies; apps and servers send none and are not browsers.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def origin_allowed(origin: str, host: str | None, allowed: list[str]) -> bool:
    parts = urlsplit(origin)
    if not parts.scheme or not parts.hostname:
        return False  # including the opaque origin "null"
    if host and parts.netloc.lower() == host.lower():
        return True  # same origin as the page's server
    for entry in allowed:
        if "://" in entry:
            wanted = urlsplit(entry)
            if (wanted.scheme, wanted.netloc.lower()) == (parts.scheme, parts.netloc.lower()):
                return True
        elif parts.hostname == entry.lower().strip("[]"):
            return True
    return False


class OriginCheck:
    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        # The headers are read in a function of their own: this frame lasts as long as
        # the socket, and a dict of them here would too (docs/benchmarks.md, finding 47).
        if not _origin_allowed_for(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _origin_allowed_for(scope) -> bool:
    # Lowercased, as ASGI wants them, whether or not the server did.
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin")
    host = headers.get(b"host")
    return origin is None or origin_allowed(
        origin.decode("latin-1"),
        host.decode("latin-1") if host else None,
        settings.WEBSOCKET_ALLOWED_ORIGINS,
    )
