"""The generator's WebSocket client: against the `websockets` library's server over
real sockets, and frame by frame against bytes a test writes (a server that breaks the
protocol on purpose)."""

import asyncio
import ipaddress
import sys
import zlib
from http import HTTPStatus

import pytest
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from taxi_bench.websocket_client import (
    HandshakeRefused,
    SocketClosed,
    WebSocketClient,
    open_websocket,
)

# RFC 6455, section 1.3's example key and the accept it must be answered with.
KEY, ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
REQUEST = b"GET / HTTP/1.1\r\n\r\n"


@pytest.fixture
def server(websockets_server):
    """A `websockets` server for the handler; a ws:// URL with a path and a query."""

    async def start(handler, **options) -> str:
        return await websockets_server(handler, **options) + "/path?q=1"

    return start


class Inbox:
    """Messages a client hands over, and a wait for the n-th."""

    def __init__(self):
        self.messages: list[bytes] = []
        self._waiters: dict[int, asyncio.Future] = {}

    def __call__(self, message: bytes, at: float) -> None:
        self.messages.append(message)
        waiter = self._waiters.pop(len(self.messages), None)
        if waiter is not None:
            waiter.set_result(None)

    async def count(self, n: int) -> list[bytes]:
        if len(self.messages) < n:
            self._waiters[n] = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._waiters[n], 5)
        return self.messages


async def echo(connection):
    async for message in connection:
        await connection.send(message)


async def test_messages_of_every_length_go_both_ways(server):
    client = await open_websocket(await server(echo), max_size=200_000)
    inbox = Inbox()
    client.listen(inbox)
    # Each length encoding: 7 bits, 16 bits, 64 bits; and text beyond ASCII.
    texts = ["", "a" * 125, "é" * 63, "b" * 126, "c" * 65_535, "d" * 65_536, "ü🚕" * 20_000]
    for text in texts:
        client.send(text)
    assert [message.decode() for message in await inbox.count(len(texts))] == texts
    await client.close()


async def test_a_message_given_as_utf_8_bytes_goes_as_that_text(server):
    received = asyncio.get_running_loop().create_future()

    async def note(connection):
        received.set_result(await connection.recv())
        await connection.wait_closed()

    client = await open_websocket(await server(note))
    client.send("ü🚕 {}".encode())
    assert await asyncio.wait_for(received, 5) == "ü🚕 {}"
    await client.close()


async def test_the_handshake_sends_the_path_and_query(server):
    seen = asyncio.get_running_loop().create_future()

    async def handler(connection):
        seen.set_result(connection.request.path)
        await connection.wait_closed()

    client = await open_websocket(await server(handler))
    assert await asyncio.wait_for(seen, 5) == "/path?q=1"
    await client.close()


async def test_a_fragmented_message_arrives_whole(server):
    async def handler(connection):
        await connection.send(["taxi ", "is ", "here"])
        await connection.send("next")
        await connection.wait_closed()

    client = await open_websocket(await server(handler))
    inbox = Inbox()
    client.listen(inbox)
    assert await inbox.count(2) == [b"taxi is here", b"next"]
    await client.close()


async def test_messages_before_listening_wait_for_it_in_order(server):
    async def handler(connection):
        for text in ("one", "two", "three"):
            await connection.send(text)
        await connection.wait_closed()

    client = await open_websocket(await server(handler))
    message, _ = await client.recv()
    assert message == b"one"
    inbox = Inbox()
    client.listen(inbox)
    assert await inbox.count(2) == [b"two", b"three"]
    await client.close()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's loopback takes every 127.x")
async def test_sockets_to_a_loopback_server_come_from_loopback_addresses_in_turn(server):
    async def address(connection):
        await connection.send(connection.remote_address[0])
        await connection.wait_closed()

    url = await server(address)
    clients = [await open_websocket(url) for _ in range(3)]
    sources = [(await client.recv())[0].decode() for client in clients]
    assert len(set(sources)) == 3
    assert all(ipaddress.ip_address(source).is_loopback for source in sources)
    assert "127.0.0.1" not in sources
    for client in clients:
        await client.close()


async def test_the_servers_ping_is_answered(server):
    async def handler(connection):
        pong = await connection.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await connection.send("pong came back")
        await connection.wait_closed()

    client = await open_websocket(await server(handler, ping_interval=None))
    message, _ = await asyncio.wait_for(client.recv(), 5)
    assert message == b"pong came back"
    await client.close()


async def test_the_client_closes_and_the_server_hears_its_code(server):
    closed = asyncio.get_running_loop().create_future()

    async def handler(connection):
        await connection.wait_closed()
        closed.set_result(connection.close_code)

    client = await open_websocket(await server(handler))
    await client.close()
    assert client.closed.done()
    assert await asyncio.wait_for(closed, 5) == 1000
    with pytest.raises(SocketClosed):
        client.send("too late")


async def test_the_server_closes_and_the_client_hears_its_code(server):
    async def handler(connection):
        await connection.close(code=4004, reason="go away")

    client = await open_websocket(await server(handler))
    await asyncio.wait_for(client.closed, 5)
    assert client.close_code == 4004
    with pytest.raises(SocketClosed):
        client.send("too late")
    with pytest.raises(SocketClosed):
        await client.recv()


async def test_a_refused_handshake_says_the_status(server):
    def refuse(connection, request):
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    with pytest.raises(HandshakeRefused) as refused:
        await open_websocket(await server(echo, process_request=refuse))
    assert refused.value.status == 403


async def test_the_subprotocol_the_server_chose(server):
    url = await server(echo, subprotocols=["taxi.v2"])
    client = await open_websocket(url, subprotocols=["taxi.v2"])
    assert client.subprotocol == "taxi.v2"
    await client.close()


@pytest.mark.parametrize("takeover", [True, False], ids=["context kept", "no context"])
async def test_compressed_messages_inflate(server, takeover):
    texts = ["position " * 200, "position " * 200 + "again", "short"]
    negotiated = []

    async def handler(connection):
        # Without the extension the server would send the same texts uncompressed.
        negotiated.extend(extension.name for extension in connection.protocol.extensions)
        for text in texts:
            await connection.send(text)
        await connection.wait_closed()

    deflate = ServerPerMessageDeflateFactory(server_no_context_takeover=not takeover)
    client = await open_websocket(
        await server(handler, compression=None, extensions=[deflate]), compression=True
    )
    inbox = Inbox()
    client.listen(inbox)
    assert [message.decode() for message in await inbox.count(3)] == texts
    assert negotiated == ["permessage-deflate"]
    await client.close()


# --- the protocol, frame by frame -----------------------------------------------------


class Transport:
    """What the client writes, and whether it closed the connection."""

    def __init__(self):
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    abort = close


def response(*extra: str, accept: str = ACCEPT) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode: int, payload: bytes, *, first: int = 0x80, masked: bool = False) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes((first | opcode, length | (0x80 if masked else 0)))
    else:
        head = bytes((first | opcode, 126 | (0x80 if masked else 0))) + length.to_bytes(2, "big")
    return head + (b"\0\0\0\0" if masked else b"") + payload


def client_made(**options) -> tuple[WebSocketClient, Transport, Inbox]:
    options = {"subprotocols": [], "deflate": False, "max_size": 1024, **options}
    client = WebSocketClient(REQUEST, KEY, **options)
    transport = Transport()
    client.connection_made(transport)
    inbox = Inbox()
    client.listen(inbox)
    return client, transport, inbox


def written_frames(transport: Transport) -> list[tuple[int, bytes]]:
    """The frames the client wrote after its request: opcode and unmasked payload."""
    data, frames = bytes(transport.written[len(REQUEST) :]), []
    while data:
        length, start = data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        mask, payload = data[start : start + 4], data[start + 4 : start + 4 + length]
        frames.append((data[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))))
        data = data[start + 4 + length :]
    return frames


def written_close_code(transport: Transport) -> int:
    """The close code of the close frame the client wrote last."""
    closes = [payload for opcode, payload in written_frames(transport) if opcode == 0x8]
    return int.from_bytes(closes[-1][:2], "big")


async def test_the_request_is_written_as_the_connection_opens():
    _, transport, _ = client_made()
    assert bytes(transport.written) == REQUEST


@pytest.mark.parametrize("chunk", [1, 7, None], ids=["byte by byte", "in sevens", "at once"])
async def test_the_response_and_frames_read_however_they_are_split(chunk):
    client, _, inbox = client_made()
    data = response() + frame(0x1, b"first") + frame(0x1, b"x" * 300) + frame(0x1, b"third")
    for start in range(0, len(data), chunk or len(data)):
        client.data_received(data[start : start + (chunk or len(data))])
    await client.opened()
    assert await inbox.count(3) == [b"first", b"x" * 300, b"third"]


@pytest.mark.parametrize(
    "answer, reason",
    [
        (response(accept="d3JvbmcgYWNjZXB0IGtleSE="), "Accept is wrong"),
        (response().replace(b"Upgrade: websocket", b"Upgrade: h2c"), "does not upgrade"),
        (response().replace(b"Connection: Upgrade", b"Connection: close"), "Connection"),
        (response("Sec-WebSocket-Protocol: other"), "subprotocol not offered"),
        (response("Sec-WebSocket-Extensions: permessage-deflate"), "extensions not offered"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "200"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
    ],
)
async def test_a_handshake_the_client_cannot_accept(answer, reason):
    client, transport, inbox = client_made()
    client.data_received(answer + frame(0x1, b"never"))
    with pytest.raises(HandshakeRefused, match=reason):
        await client.opened()
    assert transport.closed
    assert inbox.messages == []


@pytest.mark.parametrize(
    "data, code",
    [
        (frame(0x1, b"hidden", masked=True), 1002),
        (frame(0x1, b"odd", first=0x80 | 0x20), 1002),
        (frame(0x1, b"deflated?", first=0x80 | 0x40), 1002),
        (frame(0x0, b"continues nothing"), 1002),
        (frame(0x1, b"start", first=0) + frame(0x1, b"another start"), 1002),
        (frame(0x3, b"reserved opcode"), 1002),
        (frame(0x9, b"p" * 126), 1002),
        (frame(0x9, b"ping", first=0), 1002),
        (frame(0x1, b"y" * 1025), 1009),
        (frame(0x1, b"y" * 600, first=0) + frame(0x0, b"y" * 600), 1009),
    ],
    ids=[
        "masked",
        "reserved bit",
        "compressed without the extension",
        "continuation of nothing",
        "message inside a message",
        "unknown opcode",
        "long control frame",
        "fragmented control frame",
        "too big",
        "too big in fragments",
    ],
)
async def test_a_frame_the_client_cannot_accept_fails_the_connection(data, code):
    client, transport, inbox = client_made()
    client.data_received(response() + data + frame(0x1, b"after"))
    assert transport.closed
    assert client.close_code == code
    assert written_close_code(transport) == code
    assert inbox.messages == []


async def test_a_ping_is_answered_with_its_payload():
    client, transport, _ = client_made()
    client.data_received(response())
    sent_before = len(transport.written)
    client.data_received(frame(0x9, b"hello"))
    pong = bytes(transport.written[sent_before:])
    assert pong[0] == 0x8A and pong[1] == 0x80 | 5
    assert bytes(b ^ pong[2:6][i % 4] for i, b in enumerate(pong[6:])) == b"hello"


async def test_the_clients_frames_are_masked():
    client, transport, _ = client_made()
    client.data_received(response())
    sent_before = len(transport.written)
    client.send("héllo")
    sent = bytes(transport.written[sent_before:])
    payload = "héllo".encode()
    assert sent[0] == 0x81 and sent[1] == 0x80 | len(payload)
    mask = sent[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(sent[6:])) == payload


async def test_every_frame_has_a_mask_of_its_own():
    client, transport, _ = client_made()
    client.data_received(response())
    masks = set()
    for _ in range(3):
        sent_before = len(transport.written)
        client.send("same")
        masks.add(bytes(transport.written[sent_before + 2 : sent_before + 6]))
    # Unpredictable masks are the point (RFC 6455, 10.3); three equal ones by chance
    # would take odds of 2**-64.
    assert len(masks) > 1


async def test_a_close_from_the_server_is_answered_and_nothing_after_it_delivered():
    client, transport, inbox = client_made()
    client.data_received(response() + frame(0x8, (4001).to_bytes(2, "big") + b"bye"))
    client.data_received(frame(0x1, b"after the close"))
    assert client.close_code == 4001
    assert written_close_code(transport) == 4001
    assert inbox.messages == []
    # The server closes the connection once it has the answer.
    assert not transport.closed
    client.connection_lost(None)
    assert client.closed.done()


async def test_a_compressed_message_with_the_extension():
    client, _, inbox = client_made(deflate=True)
    compressor = zlib.compressobj(wbits=-15)
    body = compressor.compress(b"lat lng " * 50) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    client.data_received(
        response("Sec-WebSocket-Extensions: permessage-deflate")
        + frame(0x1, body[:-4], first=0x80 | 0x40)
        + frame(0x1, b"plain")
    )
    assert await inbox.count(2) == [b"lat lng " * 50, b"plain"]


async def test_a_compressed_message_too_big_once_inflated():
    client, transport, inbox = client_made(deflate=True)
    compressor = zlib.compressobj(wbits=-15)
    body = compressor.compress(b"0" * 5000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    client.data_received(
        response("Sec-WebSocket-Extensions: permessage-deflate")
        + frame(0x1, body[:-4], first=0x80 | 0x40)
    )
    assert client.close_code == 1009 and transport.closed
    assert inbox.messages == []
