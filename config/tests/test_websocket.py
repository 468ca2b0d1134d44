"""uvicorn's WebSocket protocol as taxi runs it: the same conversation, less kept."""

import asyncio
import contextlib
import gc
import logging
import weakref

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request
from websockets.streams import StreamReader

from config.serve import log_config
from config.websocket import HeldWrites, HttpProtocol, WebSocketProtocol, handshake_request


class Recorded(WebSocketProtocol):
    """Notes the handshake's parsed request, and (weakly) the response made for it."""

    requests: list = []
    responses: list[weakref.ref] = []

    def handle_connect(self, event) -> None:
        self.requests.append(event)
        super().handle_connect(event)
        self.responses.append(weakref.ref(self.response))


async def echo(scope, receive, send):
    """Accepts, then answers each text frame with its upper case until the close."""
    assert scope["type"] == "websocket"
    assert dict(scope["headers"])[b"x-rider"] == b"17"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "subprotocol": "taxi.v1"})
    assert scope["headers"] == []  # the handshake's, let go of once it is answered
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"].upper()})


@contextlib.asynccontextmanager
async def served(app, protocol, http=HttpProtocol, **settings):
    """`app` served as taxi has uvicorn serve it, with `protocol` for its sockets (and
    `http` for the requests that open them): the port, and uvicorn's state of the
    server."""
    settings = {"log_level": "warning", **settings}
    config = uvicorn.Config(app, http=http, ws=protocol, lifespan="off", **settings)
    config.load()
    state = ServerState()
    # As uvicorn serves: HTTP first, which hands the upgrade to the WebSocket protocol.
    listener = await asyncio.get_running_loop().create_server(
        lambda: http(config=config, server_state=state, app_state={}),
        "127.0.0.1",
        0,
    )
    try:
        yield listener.sockets[0].getsockname()[1], state
    finally:
        listener.close()


async def test_a_socket_keeps_neither_its_handshake_nor_asyncio_s_queue_and_event():
    async with served(echo, Recorded) as (port, state):
        async with connect(
            f"ws://127.0.0.1:{port}/",
            subprotocols=["taxi.v1"],
            additional_headers={"X-Rider": "17"},
        ) as client:
            assert client.subprotocol == "taxi.v1"
            await client.send("pick-up")
            assert await client.recv() == "PICK-UP"

            (protocol,) = state.connections
            (request,) = Recorded.requests
            assert len(request.headers) == 0  # the application had them in its scope
            assert request.path == ""
            gc.collect()
            assert [response() for response in Recorded.responses] == [None]
            kept = [type(value) for value in vars(protocol).values()]
            assert asyncio.Queue not in kept
            assert asyncio.Event not in kept
        await asyncio.gather(*state.tasks)  # the application saw the close and ended


class NotedHttp(HttpProtocol):
    """Notes (weakly) each HTTP protocol made: one for each socket, its handshake's."""

    made: list[weakref.ref] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.made.append(weakref.ref(self))


async def test_the_http_protocol_that_opened_a_socket_is_freed_without_the_collector(
    no_collector,
):
    NotedHttp.made.clear()
    async with served(echo, WebSocketProtocol, http=NotedHttp) as (port, state):
        async with connect(
            f"ws://127.0.0.1:{port}/",
            subprotocols=["taxi.v1"],
            additional_headers={"X-Rider": "17"},
        ) as client:
            await client.send("pick-up")
            assert await client.recv() == "PICK-UP"

            (opened_by,) = NotedHttp.made
            assert opened_by() is None
        await asyncio.gather(*state.tasks)


def scope_noted(scopes: list[dict]):
    """Notes the scope the application is called with, then echoes as `echo` does."""

    async def app(scope, receive, send):
        scopes.append({**scope, "headers": list(scope["headers"])})
        await echo(scope, receive, send)

    return app


async def open_and_talk(port: int, state: ServerState) -> None:
    async with connect(
        f"ws://127.0.0.1:{port}/taxi/?token=t%C3%A9&x=1",
        subprotocols=["taxi.v1", "course"],
        additional_headers={"X-Rider": "17", "Origin": "http://127.0.0.1"},
    ) as client:
        await client.send("pick-up")
        assert await client.recv() == "PICK-UP"
    await asyncio.gather(*state.tasks)


class FedBytes(WebSocketProtocol):
    """Notes the bytes handed to it to parse."""

    fed: list[bytes] = []
    first = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.fed.append(data)
        self.first.set()
        super().data_received(data)


def comparable(scope: dict) -> dict:
    """The scope without what differs from one server or socket to the next: ports, the
    client's random key, the state's copy."""
    differ = (b"host", b"sec-websocket-key")
    headers = [(name, b"" if name in differ else value) for name, value in scope["headers"]]
    return {
        **{key: value for key, value in scope.items() if key not in ("client", "server", "state")},
        "headers": headers,
    }


async def test_a_handshake_is_taken_as_httptools_parsed_it_into_the_same_scope():
    FedBytes.fed.clear()
    scopes: list[dict] = []
    async with served(scope_noted(scopes), FedBytes, http=HttpToolsProtocol) as served_:
        await open_and_talk(*served_)
    assert FedBytes.fed[0].startswith(b"GET /taxi/?token=")  # uvicorn's: the request again
    FedBytes.fed.clear()

    async with served(scope_noted(scopes), FedBytes) as served_:
        await open_and_talk(*served_)

    assert FedBytes.fed and not any(data.startswith(b"GET ") for data in FedBytes.fed)
    by_uvicorn, taken = map(comparable, scopes)
    assert taken == by_uvicorn
    assert taken["query_string"] == b"token=t%C3%A9&x=1"
    assert taken["subprotocols"] == ["taxi.v1", "course"]


async def test_a_handshake_request_websockets_might_refuse_goes_to_it_as_uvicorn_writes_it():
    FedBytes.fed.clear()
    FedBytes.first = asyncio.Event()
    too_many = [(f"x-{number}".encode(), b"1") for number in range(MAX_NUM_HEADERS)]
    request = uvicorn_writes(b"/", HANDSHAKE + too_many)
    async with served(echo, FedBytes) as (port, state):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        async with asyncio.timeout(5):
            await FedBytes.first.wait()
        writer.close()

    assert FedBytes.fed == [request]
    assert state.tasks == set()  # `websockets` refused it: no application was called


def uvicorn_writes(target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request as uvicorn writes it out for `websockets` to parse."""
    lines = [b"GET " + target + b" HTTP/1.1"] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def websockets_parse(data: bytes) -> Request:
    reader = StreamReader()
    reader.feed_data(data)
    parsing = Request.parse(reader.read_line)
    with pytest.raises(StopIteration) as parsed:
        next(parsing)
    return parsed.value.value


HANDSHAKE = [
    (b"host", b"127.0.0.1:8000"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
]


@pytest.mark.parametrize(
    "target, headers",
    [
        (b"/taxi/?token=abc", HANDSHAKE),
        (b"/", [*HANDSHAKE, (b"sec-websocket-protocol", b" taxi.v1 \t"), (b"x-note", b"caf\xe9")]),
        (b"/", [*HANDSHAKE, (b"sec-websocket-protocol", b"a"), (b"sec-websocket-protocol", b"b")]),
        (b"/", [*HANDSHAKE, (b"content-length", b"0")]),
        (b"/" + b"a" * (MAX_LINE_LENGTH - len("GET / HTTP/1.1\r\n")), HANDSHAKE),
        (b"/", [*HANDSHAKE, (b"x-long", b"a" * (MAX_LINE_LENGTH - len("x-long: \r\n")))]),
        (b"/", HANDSHAKE + [(f"x-{number}".encode(), b"1") for number in range(123)]),
    ],
    ids=[
        "plain",
        "spaces, tabs, latin-1",
        "repeated",
        "no body",
        "longest line",
        "longest header",
        "most headers",
    ],
)
def test_a_handshake_request_is_what_websockets_parses_from_uvicorn_s_bytes(target, headers):
    taken = handshake_request("GET", target, headers)

    parsed = websockets_parse(uvicorn_writes(target, headers))
    assert (taken.method, taken.protocol) == (parsed.method, parsed.protocol)
    assert taken.path == parsed.path
    assert list(taken.headers.raw_items()) == list(parsed.headers.raw_items())


@pytest.mark.parametrize(
    "method, target, headers",
    [
        ("POST", b"/", HANDSHAKE),
        ("GET", b"/" + b"a" * (MAX_LINE_LENGTH - len("GET / HTTP/1.1\r\n") + 1), HANDSHAKE),
        (
            "GET",
            b"/",
            [*HANDSHAKE, (b"x-long", b"a" * (MAX_LINE_LENGTH - len("x-long: \r\n")) + b"a")],
        ),
        ("GET", b"/", HANDSHAKE + [(f"x-{number}".encode(), b"1") for number in range(124)]),
        ("GET", b"/caf\xc3\xa9", HANDSHAKE),
        ("GET", b"/", [*HANDSHAKE, (b"x-note", b"a\x7fb")]),
        ("GET", b"/", [*HANDSHAKE, (b"x(note)", b"1")]),
        ("GET", b"/", [*HANDSHAKE, (b"", b"1")]),
        ("GET", b"/", [*HANDSHAKE, (b"transfer-encoding", b"chunked")]),
        ("GET", b"/", [*HANDSHAKE, (b"content-length", b"5")]),
    ],
    ids=[
        "not a GET",
        "line too long",
        "header too long",
        "too many headers",
        "path not ASCII",
        "a control in a value",
        "not a name",
        "an empty name",
        "a coded body",
        "a body",
    ],
)
def test_a_handshake_request_websockets_might_refuse_is_left_to_it(method, target, headers):
    assert handshake_request(method, target, headers) is None


class Written(WebSocketProtocol):
    """Notes what is written to each socket, write by write."""

    writes: list[list[bytes]] = []

    def connection_made(self, transport) -> None:
        super().connection_made(_Noting(transport, self.writes))


class _Noting:
    def __init__(self, transport, writes: list[list[bytes]]):
        self.transport = transport
        self.written: list[bytes] = []
        writes.append(self.written)

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.transport.write(data)

    def __getattr__(self, name):
        return getattr(self.transport, name)


def greeting(then: str):
    """Accepts, says hello in the same turn of the loop, then closes (with 4001) or
    waits for the client to."""

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        if then == "close":
            await send({"type": "websocket.close", "code": 4001})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    return app


async def test_the_handshake_s_response_and_what_follows_in_its_turn_are_one_write():
    Written.writes.clear()
    async with served(greeting(then="wait"), Written) as (port, state):
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as client:
            assert await client.recv() == "hello"

        await asyncio.gather(*state.tasks)

    (written,) = Written.writes
    assert written[0].startswith(b"HTTP/1.1 101 ")
    assert written[0].endswith(b"\x81\x05hello")  # the text frame, unmasked


async def test_a_close_in_the_handshake_s_turn_follows_what_came_before_it():
    Written.writes.clear()
    async with served(greeting(then="close"), Written) as (port, state):
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as client:
            assert await client.recv() == "hello"
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()

        await asyncio.gather(*state.tasks)

    assert closed.value.rcvd.code == 4001
    (written,) = Written.writes
    # The response, the greeting and the close frame (code 4001), in one write.
    assert written[0].startswith(b"HTTP/1.1 101 ")
    assert written[0].endswith(b"\x81\x05hello\x88\x02\x0f\xa1")


class _Lines(logging.Handler):
    """Notes what uvicorn's server log would print, as (level, line)."""

    def __init__(self, lines: list[tuple[int, str]]):
        super().__init__()
        self.lines = lines

    def emit(self, record):
        self.lines.append((record.levelno, record.getMessage()))


async def failing(scope, receive, send):
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    raise RuntimeError("the application failed")


async def talk_then_fail(access_log: bool) -> list[tuple[int, str]]:
    """A socket that talks and is closed, then one whose application fails, each on a
    server logging as taxi's does: what their logs say."""
    settings = {"log_config": log_config(), "log_level": "info", "access_log": access_log}
    lines: list[tuple[int, str]] = []
    for app in (greeting(then="close"), failing):
        async with served(app, WebSocketProtocol, **settings) as (port, state):
            # Once uvicorn has configured its logging, which replaces the handlers.
            noting = _Lines(lines)
            logging.getLogger("uvicorn.error").addHandler(noting)
            try:
                async with connect(f"ws://127.0.0.1:{port}/") as client:
                    with pytest.raises(ConnectionClosed):
                        while True:
                            await client.recv()
                await asyncio.gather(*state.tasks)
            finally:
                logging.getLogger("uvicorn.error").removeHandler(noting)
    return lines


async def test_without_the_access_log_a_socket_s_comings_and_goings_are_not_logged_but_errors_are():
    lines = await talk_then_fail(access_log=False)

    assert [text for level, text in lines if level < logging.WARNING] == []
    assert (logging.ERROR, "Exception in ASGI application\n") in lines


async def test_with_the_access_log_each_socket_s_comings_and_goings_are_logged():
    lines = await talk_then_fail(access_log=True)

    said = [text for level, text in lines if level == logging.INFO]
    assert said.count("connection open") == 2
    assert len([text for text in said if text.endswith('"WebSocket /" [accepted]')]) == 2
    assert (logging.ERROR, "Exception in ASGI application\n") in lines


class _Transport:
    def __init__(self):
        self.calls = []

    def write(self, data):
        self.calls.append(("write", data))

    def close(self):
        self.calls.append(("close",))

    def is_closing(self):
        return ("close",) in self.calls


def test_held_writes_go_out_before_a_close():
    """uvicorn closes at once on some paths (a server shutting down), which may come in
    the handshake's turn."""
    transport = _Transport()
    held = HeldWrites(transport)

    held.write(b"response")
    held.write(b"close frame")
    held.close()
    held.release()  # at the turn's end: nothing left to write

    assert transport.calls == [("write", b"responseclose frame"), ("close",)]
