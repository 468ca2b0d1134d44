"""uvicorn's WebSocket protocol as taxi runs it: the same conversation, less kept."""

import asyncio
import gc
import weakref

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect

from config.websocket import WebSocketProtocol


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


async def test_a_socket_keeps_neither_its_handshake_nor_asyncio_s_queue_and_event():
    config = uvicorn.Config(
        echo, http="httptools", ws=Recorded, lifespan="off", log_level="warning"
    )
    config.load()
    state = ServerState()
    # As uvicorn serves: HTTP first, which hands the upgrade to the WebSocket protocol.
    listener = await asyncio.get_running_loop().create_server(
        lambda: HttpToolsProtocol(config=config, server_state=state, app_state={}),
        "127.0.0.1",
        0,
    )
    port = listener.sockets[0].getsockname()[1]
    try:
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
    finally:
        listener.close()
