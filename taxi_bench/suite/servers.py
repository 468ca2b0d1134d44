"""The servers the suite starts, and what they need: database, Redis, secret."""

import os
import secrets
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from taxi_bench.suite.paths import REPOSITORY, RESULTS

SERVER_START_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Started:
    """A server the suite started, in its own process group so it stops with its
    workers; its output goes to a log file."""

    name: str
    command: list[str]
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(exist_ok=True)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command,
            cwd=REPOSITORY,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_until_listening(self, ports: list[int], timeout: float) -> None:
        """Until every one of `ports` accepts connections (the server's log level is its
        operator's choice, so its log is no signal to rely on)."""
        deadline = time.monotonic() + timeout
        waiting = list(ports)
        for _ in range(int(timeout * 10) + 1):
            waiting = [port for port in waiting if not _accepts(port)]
            if not waiting:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # another process starting up: there is no event to await
        self.stop()
        raise SystemExit(
            f"{self.name} did not start; its log:\n{self.log_path.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def private_redis_command(port: int) -> list[str]:
    """A throw-away Redis on loopback: no persistence, room for every socket's
    connections (up to what the open-files limit allows)."""
    return [
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--maxclients", "100000"),
    ]


def run_command(command: list[str], env: dict, *, timeout: float) -> str:
    finished = subprocess.run(
        command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=timeout
    )
    if finished.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{finished.stdout}\n{finished.stderr}")
    return finished.stdout


def database_ready(url: str) -> None:
    """Create the suite's PostgreSQL database if it does not exist yet."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as connection:
        exists = connection.execute(
            "select 1 from pg_database where datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'create database "{name}"')


def database_vacuumed(url: str) -> None:
    """Vacuum and analyze the suite's database. Every trip step updates a row, and a
    PostgreSQL set up for tests may run without autovacuum (this machine's does): the
    dead rows of earlier runs would slow each later run's queries, more with every run.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("vacuum analyze")


def redis_cleared(url: str, prefix: str) -> None:
    """Forget what earlier runs left under the suite's own prefix (channel-layer groups
    of sockets long closed would otherwise still be sent to)."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def secret_key() -> str:
    """A production-grade key, kept under bench-results/ so tokens minted by one run
    stay valid for the next."""
    path = RESULTS / "secret-key"
    if not path.exists():
        RESULTS.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))
    return path.read_text().strip()


def server_env(args) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": args.redis_prefix,
        "DEBUG": "0",
        "SECRET_KEY": secret_key(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production terminates TLS in a proxy; on loopback there is none to redirect to.
        "SECURE_SSL_REDIRECT": "0",
        "LOGIN_THROTTLE_RATE": "",
        "WEB_CONCURRENCY": str(args.workers),
        # Tokens minted before the run must outlive it.
        "JWT_ACCESS_MINUTES": "240",
        "HOST": "127.0.0.1",
        "PORT": str(args.port),
    }


SERVER_ENV_SHOWN = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "LOGIN_THROTTLE_RATE",
    "WEB_CONCURRENCY",
    "JWT_ACCESS_MINUTES",
    "HOST",
    "PORT",
)


def two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise SystemExit("no two free ports in a row for the relay")
