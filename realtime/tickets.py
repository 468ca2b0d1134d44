"""One-time tickets that open a socket, so browsers need not put a token in a URL.

A ticket lives in the cache (Redis when REDIS_URL is set, so any process can redeem
it) for WEBSOCKET_TICKET_SECONDS and is deleted by the one redemption that succeeds.
"""

import secrets
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class TicketGrant:
    user_id: int
    session_id: str | None
    # When the socket must close: the expiry of the token the ticket was bought with.
    expires_at: float | None


def _key(ticket: str) -> str:
    return f"ws-ticket:{ticket}"


def ticket_issue(*, grant: TicketGrant) -> str:
    ticket = secrets.token_urlsafe(32)
    cache.set(_key(ticket), asdict(grant), timeout=settings.WEBSOCKET_TICKET_SECONDS)
    return ticket


def ticket_redeem(ticket: str) -> TicketGrant | None:
    key = _key(ticket)
    grant = cache.get(key)
    # Only the caller whose delete removed the key may use it: a ticket opens one socket.
    if grant is None or not cache.delete(key):
        return None
    return TicketGrant(**grant)
