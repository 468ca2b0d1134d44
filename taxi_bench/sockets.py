"""A benchmark user's WebSocket to taxi (or to the raw relay).

Each socket hands every message, stamped with the time its bytes were read, to the
workload's handler; replies to requests that carried a `request_id` also resolve the
future `ask` returned, so setup steps await their answers instead of sleeping.
"""

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from taxi_bench.target import Target
from taxi_bench.websocket_client import WebSocketClient, open_websocket

NATIVE_SUBPROTOCOL = "taxi.v2"
# Frames from taxi are a few KB at most; a snapshot of a busy user may be larger.
MAX_FRAME_BYTES = 1024 * 1024

Handler = Callable[["Peer", dict, float], None]


def _ignore(peer: "Peer", message: dict, at: float) -> None:
    return None


class Peer:
    """One open socket of one user."""

    # A request id the server has seen makes it answer the earlier request again
    # (idempotent retries), so ids are unique across runs, not only within one.
    _run = secrets.token_hex(4)
    _request_numbers = itertools.count(1)

    def __init__(self, socket: WebSocketClient, *, user_id: int | None = None):
        self.socket = socket
        self.user_id = user_id
        self.on_message: Handler = _ignore
        self.replies: dict[str, asyncio.Future] = {}
        self._deadline: asyncio.TimerHandle | None = None
        socket.closed.add_done_callback(self._replies_fail)

    def listen(self, on_message: Handler, *, until: float) -> None:
        """Hand messages to `on_message` until the socket closes or the monotonic
        clock reaches `until`."""
        self.on_message = on_message
        self.socket.listen(self._received)
        self._deadline = asyncio.get_running_loop().call_later(
            max(0.0, until - time.monotonic()), self._stop_listening
        )

    def _received(self, frame: bytes, at: float) -> None:
        message = orjson.loads(frame)
        self.on_message(self, message, at)
        request_id = message.get("request_id")
        future = self.replies.pop(request_id, None) if request_id else None
        if future is not None and not future.done():
            future.set_result(message)

    def _stop_listening(self) -> None:
        self.socket.listen(None)
        self._replies_fail()

    def _replies_fail(self, *_: Any) -> None:
        replies, self.replies = self.replies, {}
        for future in replies.values():
            if not future.done():
                future.set_exception(ConnectionError("the socket closed before the reply"))

    @property
    def closed(self) -> bool:
        return self.socket.closed.done()

    async def send(self, message: dict) -> None:
        self.send_now(message)

    def send_now(self, message: dict) -> None:
        """Send `message`: writing a socket waits for nothing (its transport buffers)."""
        # orjson, not the standard library's json: 0.4 µs a position's message instead of
        # 5, and 0.9 µs a message read instead of 5, in a generator that shares the
        # server's cores (docs/benchmarks.md, finding 92).
        self.socket.send(orjson.dumps(message))

    def new_request_id(self) -> str:
        return f"{self._run}-{next(self._request_numbers)}"

    async def ask(self, message: dict, *, timeout: float = 10.0) -> dict:
        """Send a request with a fresh `request_id` and wait for the reply naming it."""
        request_id = message.setdefault("request_id", self.new_request_id())
        future = asyncio.get_running_loop().create_future()
        self.replies[request_id] = future
        await self.send(message)
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        await self.socket.close()


async def open_connection(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    timeout: float = 10.0,
    compression: bool = False,
) -> WebSocketClient:
    # Compression is off unless asked for: the load measures the server, and taxi turns
    # per-message deflate off; offering it shows what it would cost if it were on.
    # Pings are what the connections workload measures, when it chooses to; the
    # client only answers the server's. No proxy from the environment is ever used:
    # the target was checked to be loopback.
    return await open_websocket(
        url,
        subprotocols=subprotocols,
        timeout=timeout,
        compression=compression,
        max_size=MAX_FRAME_BYTES,
    )


async def open_taxi_socket(
    target: Target,
    access: str,
    *,
    native: bool = True,
    timeout: float = 10.0,
    compression: bool = False,
) -> tuple[Peer, dict | None]:
    """Open an authenticated socket; for the native protocol, wait for its snapshot
    (the socket is usable once it has arrived) and return it too."""
    socket = await open_connection(
        target.ws_url("/taxi/", token=access),
        subprotocols=[NATIVE_SUBPROTOCOL] if native else None,
        timeout=timeout,
        compression=compression,
    )
    peer = Peer(socket)
    snapshot = None
    if native:
        try:
            async with asyncio.timeout(timeout):
                frame, _ = await socket.recv()
            first: Any = orjson.loads(frame)
        except BaseException:
            await socket.close()
            raise
        if first.get("type") != "snapshot":
            await socket.close()
            raise ConnectionError(f"the first message was {first.get('type')!r}, not a snapshot")
        snapshot = first["data"]
        peer.user_id = snapshot["user"]["id"]
    return peer, snapshot
