"""A benchmark user's WebSocket to taxi (or to the raw relay).

Each socket reads in its own task and hands every message, stamped with the time it
arrived, to the workload's handler; replies to requests that carried a `request_id`
also resolve the future `ask` returned, so setup steps await their answers instead
of sleeping.
"""

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from taxi_bench.target import Target

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

    def __init__(self, connection: ClientConnection, *, user_id: int | None = None):
        self.connection = connection
        self.user_id = user_id
        self.on_message: Handler = _ignore
        self.replies: dict[str, asyncio.Future] = {}
        self.reader: asyncio.Task | None = None

    def listen(self, on_message: Handler, *, until: float) -> None:
        """Read until the socket closes or the monotonic clock reaches `until`."""
        self.on_message = on_message
        self.reader = asyncio.create_task(self._read(until))

    async def _read(self, until: float) -> None:
        try:
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                async for frame in self.connection:
                    at = time.monotonic()
                    message = json.loads(frame)
                    self.on_message(self, message, at)
                    request_id = message.get("request_id")
                    future = self.replies.pop(request_id, None) if request_id else None
                    if future is not None and not future.done():
                        future.set_result(message)
        except TimeoutError:
            pass
        except ConnectionClosed:
            pass
        finally:
            for future in self.replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("the socket closed before the reply"))

    async def send(self, message: dict) -> None:
        await self.connection.send(json.dumps(message, separators=(",", ":")))

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
        await self.connection.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


async def open_connection(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    timeout: float = 10.0,
    compression: bool = False,
) -> ClientConnection:
    return await connect(
        url,
        subprotocols=subprotocols,
        # Off unless asked for: the load measures the server, and taxi turns
        # per-message deflate off; offering it shows what it would cost if it were on.
        compression="deflate" if compression else None,
        # Pings are what the connections workload measures, when it chooses to.
        ping_interval=None,
        # Never through a proxy from the environment: the target was checked to be
        # loopback, and a proxy would send the load elsewhere.
        proxy=None,
        open_timeout=timeout,
        close_timeout=5,
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
    connection = await open_connection(
        target.ws_url("/taxi/", token=access),
        subprotocols=[NATIVE_SUBPROTOCOL] if native else None,
        timeout=timeout,
        compression=compression,
    )
    peer = Peer(connection)
    snapshot = None
    if native:
        try:
            first: Any = json.loads(await asyncio.wait_for(connection.recv(), timeout))
        except BaseException:
            await connection.close()
            raise
        if first.get("type") != "snapshot":
            await connection.close()
            raise ConnectionError(f"the first message was {first.get('type')!r}, not a snapshot")
        snapshot = first["data"]
        peer.user_id = snapshot["user"]["id"]
    return peer, snapshot
