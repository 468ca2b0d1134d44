"""A real taxi server for the smoke runs: `python -m config.serve` in a subprocess on a
free port, on the test database, so that it serves what the test commits; and small
`websockets` servers in the test's own loop, for the generator's client and accounting."""

import collections
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import global_settings, settings
from django.core.management import call_command
from websockets.asyncio.server import serve

from taxi_bench.suite.paths import REPOSITORY
from taxi_bench.suite.servers import free_port
from taxi_bench.users import Roster

SERVER_START_SECONDS = 60
READY_LINE = "Uvicorn running on"


def database_url() -> str:
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class ServerProcess:
    def __init__(self, command: list[str], env: dict | None, port: int):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.pid = self.process.pid
        # The server's log is drained all along (a full pipe would stall the server) and
        # its end kept, to show when something fails.
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.log.append(line)
            self.lines.put(line)

    def wait_for(self, *texts: str, timeout: float) -> None:
        """Until the server has printed lines containing each of `texts`."""
        waiting = set(texts)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            waiting = {text for text in waiting if text not in line}
            if not waiting:
                return
        self.stop()
        raise RuntimeError("the server did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def taxi_server(transactional_db):
    """taxi as production runs it (one worker), on this test run's database and Redis.

    One for each test, stopped before the test's tables are emptied: a server still
    closing its sockets (writing their trails) would otherwise deadlock with the
    truncation."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "LOGIN_THROTTLE_RATE": "",
        "UVICORN_LOG_LEVEL": "info",
    }
    server = ServerProcess([sys.executable, "-m", "config.serve"], env, port)
    server.wait_for(READY_LINE, timeout=SERVER_START_SECONDS)
    yield server
    server.stop()


@pytest.fixture
def make_roster(transactional_db, tmp_path, settings):
    """Bench users made with `manage.py bench_users`, committed so the server sees them."""
    # One real password hash, which the server (with its default hashers) can check.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS

    def make_users(riders: int, drivers: int) -> Path:
        path = tmp_path / "bench-users.json"
        with open(os.devnull, "w") as quiet:
            call_command("bench_users", riders=riders, drivers=drivers, out=path, stdout=quiet)
        return path

    async def make(*, riders: int, drivers: int) -> Roster:
        return Roster.load(await sync_to_async(make_users)(riders, drivers))

    return make


@pytest.fixture
async def websockets_server():
    """Start a `websockets` server for a handler, without compression unless the
    options say otherwise; its ws:// URL. Every one is closed after the test."""
    servers = []

    async def start(handler, **options) -> str:
        options.setdefault("compression", None)
        server = await serve(handler, "127.0.0.1", 0, **options)
        servers.append(server)
        return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
