"""A lean WebSocket client (RFC 6455) for the load generator.

The generator shares the machine with the server it loads, so whatever its client
costs is taken from the server: with the `websockets` library's asyncio client, the
generator used about a third of the CPU while opening sockets (a task, a timeout and
an assembler for each socket, the handshake built and parsed in generators, a
message's frames through several layers; docs/benchmarks.md, finding 65). This client
is an asyncio protocol that parses frames as they arrive and hands each whole message
to a callback, stamped with the time its bytes were read.

It speaks what the workloads need and checks what a client must: the handshake's
status, `Upgrade`, `Connection` and `Sec-WebSocket-Accept`; the subprotocol and
extension the server chose among those offered; frames unmasked, control frames whole
and short, fragments in order. Pings are answered. Per-message deflate, when offered
and accepted, is read (the client sends uncompressed messages, which the extension
allows), so that a server that compresses can still be loaded and its memory measured.
A frame the client cannot accept fails the connection with close code 1002.

To a server on an IPv4 loopback address, on Linux, the client connects from the
loopback addresses 127.0.0.2 to 127.0.0.254 in turn. From one address to one server,
the kernel's choice of a local port costs 0.7 to 1.3 ms of CPU a connection once
about 13 000 are open (it searches the even half of the port range before the odd),
which the generator would take from the server it loads; a server's clients come
from many addresses (docs/benchmarks.md, finding 90).
"""

import asyncio
import base64
import hashlib
import ipaddress
import itertools
import os
import socket
import ssl
import sys
import time
import zlib
from collections.abc import Callable
from urllib.parse import urlsplit

# RFC 6455, section 1.3: the server proves it read the key by hashing it with this.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_RESPONSE_HEAD_BYTES = 16 * 1024

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FIN, RSV1 = 0x80, 0x40
NORMAL_CLOSURE, PROTOCOL_ERROR, TOO_BIG = 1000, 1002, 1009

# Linux's socket option (<linux/in.h>) to take a bound socket's port at its connect,
# unique for the pair of addresses, instead of at its bind, unique for its own.
IP_BIND_ADDRESS_NO_PORT = 24
LOOPBACK_SOURCES = itertools.cycle(f"127.0.0.{n}" for n in range(2, 255))

Handler = Callable[[bytes, float], None]


class HandshakeRefused(ConnectionError):
    """The server did not open the socket: an HTTP status other than 101, or a
    response that is not a valid WebSocket handshake."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


class SocketClosed(ConnectionError):
    """The socket is closed, or closing, so nothing more can be sent or received."""


class _Deflate:
    """Per-message deflate as the server negotiated it, for reading."""

    def __init__(self, response: str):
        params = {}
        for part in response.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        self.window_bits = int(params.get("server_max_window_bits") or 15)
        self.takeover = "server_no_context_takeover" not in params
        self._decompressor = zlib.decompressobj(-self.window_bits)

    def inflate(self, payload: bytes, max_bytes: int) -> bytes:
        if not self.takeover:
            self._decompressor = zlib.decompressobj(-self.window_bits)
        # The sender leaves off the four bytes that end a flushed block (RFC 7692, 7.2.1).
        data = self._decompressor.decompress(payload + b"\x00\x00\xff\xff", max_bytes + 1)
        if len(data) > max_bytes:
            raise _Failure(TOO_BIG, "message too big")
        return data


class _Failure(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


class WebSocketClient(asyncio.Protocol):
    """One client socket, from its handshake to its close (`open_websocket`)."""

    def __init__(
        self, request: bytes, key: str, *, subprotocols: list[str], deflate: bool, max_size: int
    ):
        loop = asyncio.get_running_loop()
        self._request = request
        self._expected_accept = base64.b64encode(
            hashlib.sha1(key.encode() + ACCEPT_GUID).digest()
        ).decode()
        self._offered_subprotocols = subprotocols
        self._offered_deflate = deflate
        self._max_size = max_size
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._opening: asyncio.Future[None] = loop.create_future()
        self._fragments: list[bytes] = []
        self._fragments_compressed = False
        self._fragments_size = 0
        self._inbox: list[tuple[bytes, float]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._handler: Handler | None = None
        self._deflate: _Deflate | None = None
        self.subprotocol: str | None = None
        self.closing = False
        self.close_code: int | None = None
        self.closed: asyncio.Future[None] = loop.create_future()

    # --- the socket's life, as asyncio reports it ---------------------------------

    def connection_made(self, transport) -> None:
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        self._buffer += data
        try:
            if not self._opening.done() and not self._handshake_read():
                return
            self._frames_read(at)
        except _Failure as failure:
            self._fail(failure.code, str(failure))
        except HandshakeRefused as refused:
            self._opening.set_exception(refused)
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if not self._opening.done():
            self._opening.set_exception(
                HandshakeRefused("the server closed the connection during the handshake")
            )
        if self.close_code is None:
            self.close_code = 1006  # closed without a close frame
        self._wake()
        if not self.closed.done():
            self.closed.set_result(None)

    # --- the handshake ------------------------------------------------------------

    def _handshake_read(self) -> bool:
        """Read the handshake's response, if all of it is here; whether it was."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_RESPONSE_HEAD_BYTES:
                raise HandshakeRefused("the handshake's response is too long")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HandshakeRefused(f"not an HTTP response: {status_line!r}")
        status = int(parts[1])
        if status != 101:
            raise HandshakeRefused(f"the server answered {status_line!r}", status)
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise HandshakeRefused(f"a malformed header line: {line!r}", status)
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._response_check(headers, status)
        self._opening.set_result(None)
        return True

    def _response_check(self, headers: dict[str, str], status: int) -> None:
        if headers.get("upgrade", "").lower() != "websocket":
            raise HandshakeRefused("the response does not upgrade to websocket", status)
        connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
        if "upgrade" not in connection:
            raise HandshakeRefused("the response's Connection is not Upgrade", status)
        if headers.get("sec-websocket-accept") != self._expected_accept:
            raise HandshakeRefused("the response's Sec-WebSocket-Accept is wrong", status)
        subprotocol = headers.get("sec-websocket-protocol")
        if subprotocol is not None and subprotocol not in self._offered_subprotocols:
            raise HandshakeRefused(f"the server chose a subprotocol not offered: {subprotocol}")
        self.subprotocol = subprotocol
        extensions = headers.get("sec-websocket-extensions")
        if extensions is not None:
            name = extensions.split(";")[0].strip().lower()
            if not self._offered_deflate or name != "permessage-deflate" or "," in extensions:
                raise HandshakeRefused(f"the server chose extensions not offered: {extensions}")
            self._deflate = _Deflate(extensions)

    # --- frames in ----------------------------------------------------------------

    def _frames_read(self, at: float) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            if second & 0x80:
                raise _Failure(PROTOCOL_ERROR, "a masked frame from the server")
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if length > self._max_size:
                raise _Failure(TOO_BIG, "message too big")
            end = start + length
            if len(buffer) < end:
                return
            payload = bytes(buffer[start:end])
            del buffer[:end]
            self._frame_read(first, payload, at)

    def _frame_read(self, first: int, payload: bytes, at: float) -> None:
        opcode, final = first & 0x0F, bool(first & FIN)
        compressed = bool(first & RSV1)
        if first & 0x30 or (compressed and (self._deflate is None or opcode not in (TEXT, BINARY))):
            raise _Failure(PROTOCOL_ERROR, "reserved bits set")
        if opcode in (TEXT, BINARY):
            if self._fragments:
                raise _Failure(PROTOCOL_ERROR, "a new message before the last one ended")
            if final:
                self._message_read(self._inflated(payload) if compressed else payload, at)
            else:
                self._fragments, self._fragments_compressed = [payload], compressed
                self._fragments_size = len(payload)
        elif opcode == CONTINUATION:
            if not self._fragments:
                raise _Failure(PROTOCOL_ERROR, "a continuation with no message to continue")
            self._fragments_size += len(payload)
            if self._fragments_size > self._max_size:
                raise _Failure(TOO_BIG, "message too big")
            self._fragments.append(payload)
            if final:
                message = b"".join(self._fragments)
                if self._fragments_compressed:
                    message = self._inflated(message)
                self._fragments = []
                self._message_read(message, at)
        elif opcode in (CLOSE, PING, PONG):
            if not final or len(payload) > 125:
                raise _Failure(PROTOCOL_ERROR, "a fragmented or long control frame")
            if opcode == PING:
                if not self.closing:
                    self._frame_write(PONG, payload)
            elif opcode == CLOSE:
                self._close_read(payload)
        else:
            raise _Failure(PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _inflated(self, payload: bytes) -> bytes:
        try:
            return self._deflate.inflate(payload, self._max_size)
        except zlib.error as error:
            raise _Failure(PROTOCOL_ERROR, f"a message that does not inflate: {error}") from None

    def _message_read(self, message: bytes, at: float) -> None:
        if self.closing:
            return
        if self._handler is not None:
            self._handler(message, at)
        else:
            self._inbox.append((message, at))
            self._wake()

    def _close_read(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self.close_code = code
        if not self.closing:
            # The server began the closing handshake: answer it, then it closes the
            # connection (RFC 6455, 7.1.1), so the client keeps no TIME_WAIT port.
            self.closing = True
            self._frame_write(CLOSE, payload[:2])
        self._wake()

    def _fail(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.close_code = code
            self._frame_write(CLOSE, code.to_bytes(2, "big") + reason.encode()[:120])
        self._transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- what a user of the socket calls ------------------------------------------

    async def opened(self) -> None:
        await self._opening

    async def recv(self) -> tuple[bytes, float]:
        """The next message and when it arrived; only until `listen` is called."""
        while not self._inbox:
            if self.closing:
                raise SocketClosed(f"the socket closed (code {self.close_code})")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._inbox.pop(0)

    def listen(self, handler: Handler | None) -> None:
        """Hand every message to `handler` from now on, those waiting first; None to
        drop them instead."""
        self._handler = handler or _dropped
        inbox, self._inbox = self._inbox, []
        for message, at in inbox:
            self._handler(message, at)

    def send(self, text: str | bytes) -> None:
        """Send a text message: `text`, or its UTF-8 bytes."""
        if self.closing:
            raise SocketClosed(f"the socket is closing (code {self.close_code})")
        self._frame_write(TEXT, text.encode() if isinstance(text, str) else text)

    async def close(self, code: int = NORMAL_CLOSURE, timeout: float = 5.0) -> None:
        """The closing handshake, then the server closes the connection; after
        `timeout`, the client closes it."""
        if not self.closing:
            self.closing = True
            self._frame_write(CLOSE, code.to_bytes(2, "big"))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self._transport.abort()
            await self.closed

    def _frame_write(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            head = bytes((FIN | opcode, 0x80 | length))
        elif length < 1 << 16:
            head = bytes((FIN | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            head = bytes((FIN | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        mask = os.urandom(4)
        self._transport.write(head + mask + _masked(payload, mask))


def _dropped(message: bytes, at: float) -> None:
    return None


def _masked(payload: bytes, mask: bytes) -> bytes:
    """The payload XORed with the mask repeated (RFC 6455, 5.3), as one big integer."""
    length = len(payload)
    repeated = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )


async def open_websocket(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    timeout: float = 10.0,
    compression: bool = False,
    max_size: int = 1024 * 1024,
) -> WebSocketClient:
    """Connect to a ws:// or wss:// URL and complete the handshake within `timeout`."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    head = [
        f"GET {resource} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: taxi-bench",
    ]
    if subprotocols:
        head.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if compression:
        head.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    request = ("\r\n".join(head) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()

    def protocol() -> WebSocketClient:
        return WebSocketClient(
            request,
            key,
            subprotocols=subprotocols or [],
            deflate=compression,
            max_size=max_size,
        )

    async with asyncio.timeout(timeout):
        address = _loopback_v4(parts.hostname)
        if address is None or sys.platform != "linux":
            where = {"host": parts.hostname, "port": port}
        else:
            sock = await _connected_from(next(LOOPBACK_SOURCES), (address, port))
            where = {"sock": sock, "server_hostname": parts.hostname if secure else None}
        try:
            _, client = await loop.create_connection(
                protocol, ssl=ssl.create_default_context() if secure else None, **where
            )
        except BaseException:
            if "sock" in where:
                where["sock"].close()
            raise
        try:
            await client.opened()
        except BaseException:
            client._transport.abort()
            raise
    return client


def _loopback_v4(host: str) -> str | None:
    """`host` if it is an IPv4 loopback address, else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return host if address.version == 4 and address.is_loopback else None


async def _connected_from(source: str, server: tuple[str, int]) -> socket.socket:
    """A TCP socket connected from the address `source` to `server`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, server)
    except BaseException:
        sock.close()
        raise
    return sock
