"""uvicorn's WebSocket protocol, holding less for each open socket.

A socket is held for as long as a rider or driver has the app open, so whatever its
protocol object keeps is multiplied by every socket a worker holds. uvicorn's
`websockets-sansio` protocol keeps, for the connection's life, an `asyncio.Queue` and
an `asyncio.Event` (4.2 KB empty, see `config.lean_asyncio`) and the handshake's
request and response as `websockets` parsed them, headers and all (about 3 KB), which
it needs only until the handshake is answered; and the scope's headers, which taxi
reads only in the handshake. The application sees the headers in its scope until it
accepts or refuses the socket, and an empty list after (docs/benchmarks.md, finding 51).

Its lines for each socket accepted and opened follow the access log
(`ACCESS_LOG`), as HTTP requests' lines do.

It also writes the handshake's response together with whatever the application sends
in the same turn of the event loop (taxi's snapshot): one write to the socket where
uvicorn makes one a message, for the server and for the client that reads it
(docs/benchmarks.md, finding 56).

This relies on uvicorn 0.54's attributes of that protocol, as pinned in
requirements/base.txt; `config/tests/test_websocket.py` fails if an upgrade moves them.
"""

import asyncio
import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from config.lean_asyncio import LeanEvent, LeanQueue
from config.logging import QUIET_SOCKETS


class HeldWrites:
    """A transport whose writes are held, to be written as one (`release`); anything
    else is the transport's own, and a close writes what is held first."""

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport
        self.held: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.held.append(data)

    def close(self) -> None:
        self.release()
        self.transport.close()

    def release(self) -> None:
        held, self.held = self.held, []
        if held and not self.transport.is_closing():
            self.transport.write(b"".join(held))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()
        self.writable = LeanEvent()
        self.writable.set()
        if not self.config.access_log:
            # uvicorn's line for each handshake answered and websockets' for each socket
            # opened are the sockets' access log, off with HTTP's: the two lines cost
            # a tenth of a socket's CPU (docs/benchmarks.md, finding 62). Errors are
            # still logged.
            self.logger = self.conn.logger = logging.getLogger(QUIET_SOCKETS)

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # The scope has what the request carried, and the response made from it is all
        # the handshake still needs. `websockets` keeps the request for the connection's
        # life (its parser's frame does), so emptying it, not letting go of it, frees
        # its headers and its path (which holds the socket's token, about 0.5 KB).
        event.headers.clear()
        event.path = ""

    async def send(self, message) -> None:
        if message["type"] == "websocket.accept" and not self.handshake_complete:
            held = self.transport = HeldWrites(self.transport)
            asyncio.get_running_loop().call_soon(self._writes_release, held)
        await super().send(message)
        # Once, as the handshake is answered; not again for every later message.
        if self.handshake_complete and self.response is not None:
            self.response = None
            # The application has read the headers for its handshake (origin and
            # credentials); every copy of the scope shares this one list.
            self.scope["headers"].clear()

    def _writes_release(self, held: HeldWrites) -> None:
        self.transport = held.transport
        held.release()
