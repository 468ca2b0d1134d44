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

And it takes the handshake's request as uvicorn's HTTP protocol parsed it
(`HttpProtocol`), where uvicorn writes the request out again for `websockets` to parse
line by line (finding 89).

This relies on uvicorn 0.54's attributes of that protocol and of its httptools one, and
on `websockets` 17's parser of a connection (`parser`, `Protocol.parse`), as pinned in
requirements/base.txt; `config/tests/test_websocket.py` fails if an upgrade moves them.
"""

import asyncio
import logging
import re
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request
from websockets.protocol import Protocol

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

    def request_received(self, request: Request) -> None:
        """The handshake's request, parsed already (`handshake_request`): what follows
        it on the connection is frames, as `websockets`' parser would go on to read."""
        self.conn.parser = Protocol.parse(self.conn)
        next(self.conn.parser)
        self.handle_connect(request)

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


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol (httptools), handing a WebSocket handshake's request to
    the socket's protocol as httptools parsed it.

    uvicorn writes the parsed request out again for `websockets` to parse, line by line
    in Python: 15 to 40 µs of the 190 to 250 µs of CPU from the request's bytes to the
    application's call (docs/benchmarks.md, finding 89). A request that `websockets`'
    parser would refuse, or might, still goes to it that way, to be refused as before.
    """

    def handle_websocket_upgrade(self) -> None:
        request = handshake_request(self.scope["method"], self.url, self.scope["headers"])
        if request is None:
            super().handle_websocket_upgrade()
            return
        self.connections.discard(self)
        protocol = self.ws_protocol_class(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self.transport)
        protocol.request_received(request)
        self.transport.set_protocol(protocol)
        # The socket's protocol has the connection now. This one's parser holds its bound
        # methods to call back: a reference cycle that would leave this protocol, its
        # parser and its request's headers to the garbage collector, for every socket
        # opened (docs/benchmarks.md, finding 93).
        self.parser = None


# What `websockets` allows in a header's name and in its value (RFC 9110), as its parser
# checks them.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"[\x09\x20-\x7e\x80-\xff]*")
# What uvicorn writes around the target, and around a header's name and value, in a
# line that `websockets` reads up to MAX_LINE_LENGTH bytes of.
_REQUEST_LINE_EXTRA = len("GET  HTTP/1.1\r\n")
_HEADER_LINE_EXTRA = len(": \r\n")


def handshake_request(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]]
) -> Request | None:
    """The request `websockets` would parse from the bytes uvicorn writes for it
    (`target` and `headers` as httptools gave them, the names in lower case); None for
    one its parser would refuse, or might: not a `GET`, more or longer lines than it
    takes, a name or value it does not, a path that is not ASCII, a body."""
    if (
        method != "GET"
        or len(target) + _REQUEST_LINE_EXTRA > MAX_LINE_LENGTH
        or not target.isascii()
        or len(headers) > MAX_NUM_HEADERS
    ):
        return None
    names = [name for name, _ in headers]
    values = [value.strip(b" \t") for _, value in headers]
    if (
        # The names joined, one match for all of them; an empty one joins unseen.
        b"" in names
        or not _TOKEN.fullmatch(b"".join(names))
        or not _VALUE.fullmatch(b"".join(values))
        or b"transfer-encoding" in names
        or any(len(name + value) + _HEADER_LINE_EXTRA > MAX_LINE_LENGTH for name, value in headers)
    ):
        return None
    parsed = Headers()
    for name, value in zip(names, values, strict=True):
        parsed[name.decode("ascii")] = value.decode("latin-1")
    if not set(parsed.get_all("content-length")) <= {"0"}:
        return None
    return Request(target.decode("ascii"), parsed)
