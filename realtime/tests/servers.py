"""Real taxi servers for tests: `python -m config.serve`, as the README's run command
starts it, in processes of their own, on the test database and the test session's Redis
prefix."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url_of_the_tests() -> str:
    """The test database pytest-django made (its NAME is `test_...`), as a URL."""
    database = settings.DATABASES["default"]
    assert database["NAME"].startswith("test_"), database["NAME"]
    credentials = quote(database["USER"] or "", safe="")
    if database["PASSWORD"]:
        credentials += ":" + quote(database["PASSWORD"], safe="")
    host = database["HOST"] or "127.0.0.1"
    port = database["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{quote(database['NAME'], safe='')}"


class Server:
    """One `python -m config.serve` process, on its own port, logging to a file."""

    def __init__(self, name: str, log_dir: Path, **environment: str):
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        environment = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            "DATABASE_URL": database_url_of_the_tests(),
            "DATABASE_POOL": "0",
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "DEBUG": "1",
            **environment,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "config.serve"],
                cwd=REPO_ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def ready(self) -> bool:
        """Whether the server answers HTTP (fails the test if the process has died)."""
        if self.process.poll() is not None:
            pytest.fail(f"server {self.name} exited with {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.url("http", "/api/docs/"), timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def kill(self) -> None:
        """Stop it the hard way, as a crash would: no shutdown, no clean-up."""
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


@contextlib.contextmanager
def running_servers(names: list[str], log_dir: Path, **environment: str):
    """Start a server for each name, wait until all answer, and stop them all after."""
    started: list[Server] = []
    try:
        started.extend(Server(name, log_dir, **environment) for name in names)
        deadline = time.monotonic() + STARTUP_SECONDS
        waiting = list(started)
        while waiting:
            waiting = [server for server in waiting if not server.ready()]
            if waiting and time.monotonic() > deadline:
                logs = "\n".join(f"--- {server.name}:\n{server.log()}" for server in waiting)
                pytest.fail(f"servers not ready in {STARTUP_SECONDS} s:\n{logs}")
            if waiting:
                time.sleep(0.05)  # between polls of a bounded wait
        yield started
    finally:
        for server in started:
            server.stop()
