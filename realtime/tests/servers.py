"""Real taxi servers for tests: `python -m config.serve`, as the README's run command
starts it, in processes of their own, on the test's database and Redis."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    database = settings.DATABASES["default"]
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return (
        f"postgres://{database['USER']}{password}@{database['HOST'] or '127.0.0.1'}"
        f":{database['PORT'] or 5432}/{database['NAME']}"
    )


class ServerProcess:
    def __init__(self, **environment: str):
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/taxi/"
        env = {
            **os.environ,
            "DEBUG": "1",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "UVICORN_LOG_LEVEL": "warning",
            **environment,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "config.serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_until_listening(self, deadline_seconds: float = 30) -> None:
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise RuntimeError(f"the server exited early:\n{output}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)  # polling a port that is not open yet; there is no event
        raise TimeoutError(f"no server listening on port {self.port}")

    def kill(self) -> None:
        """Stop it the hard way: no shutdown, no clean-up, as a crashed process."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def servers(count: int, **environment: str):
    started = [ServerProcess(**environment) for _ in range(count)]
    try:
        for server in started:
            server.wait_until_listening()
        yield started
    finally:
        for server in started:
            server.stop()
