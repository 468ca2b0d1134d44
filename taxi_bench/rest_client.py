"""A small HTTP/1.1 client over asyncio streams, keeping its connection alive.

Enough HTTP for taxi's JSON API (Content-Length or chunked bodies) and no dependency:
one connection carries one request at a time, as a browser's or app's would.
"""

import asyncio
import contextlib
import json
import ssl

from taxi_bench.target import Target

MAX_HEADER_LINES = 100
MAX_BODY_BYTES = 64 * 1024 * 1024


class HttpError(Exception):
    pass


class HttpConnection:
    def __init__(self, target: Target, timeout: float = 30.0):
        self.target = target
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.target.host,
            self.target.port,
            ssl=ssl.create_default_context() if self.target.secure else None,
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def request(
        self, method: str, path: str, *, json_body=None, token: str | None = None
    ) -> tuple[int, bytes]:
        """Send one request and read its whole response: (status, body)."""
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.target.host}:{self.target.port}",
            "Accept: application/json",
            f"Content-Length: {len(body)}",
        ]
        if json_body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        try:
            return await asyncio.wait_for(self._exchange(message), self.timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, HttpError):
            # A connection the server closed or broke is not reused.
            await self.close()
            raise

    async def _exchange(self, message: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(message)
        await self._writer.drain()
        status_line = await self._reader.readuntil(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError) as error:
            raise HttpError(f"bad status line {status_line!r}") from error
        headers = {}
        for _ in range(MAX_HEADER_LINES):
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise HttpError("too many header lines")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked_body()
        else:
            length = int(headers.get("content-length", "0"))
            if length > MAX_BODY_BYTES:
                raise HttpError(f"a {length}-byte body is more than this client reads")
            body = await self._reader.readexactly(length)
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def _chunked_body(self) -> bytes:
        assert self._reader is not None
        chunks = []
        total = 0
        while total <= MAX_BODY_BYTES:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers from this server
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
            total += size
        raise HttpError("chunked body larger than this client reads")
