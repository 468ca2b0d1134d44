"""The real server, started as the README starts it, twice: two processes that share only
PostgreSQL and Redis carry a whole trip between a rider on one and a driver on the other,
over real sockets, in both dialects."""

import asyncio
import json
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
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect

from accounts.services import session_tokens_issue
from realtime.protocols import NATIVE_SUBPROTOCOL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30
RECEIVE_SECONDS = 5
ADDRESSES = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}


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
    """One `python -m config.serve` process, on its own port."""

    def __init__(self, name: str, log_dir: Path):
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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(django_db_setup, tmp_path_factory):
    """Two server processes on the test database and the test session's Redis prefix."""
    log_dir = tmp_path_factory.mktemp("servers")
    started: list[Server] = []
    try:
        started.append(Server("A", log_dir))
        started.append(Server("B", log_dir))
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


async def access_token(user) -> str:
    return (await sync_to_async(session_tokens_issue)(user=user))["access"]


async def receive(websocket) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), RECEIVE_SECONDS))


async def send(websocket, message: dict) -> None:
    await websocket.send(json.dumps(message))


async def test_a_course_trip_crosses_processes(servers, make_user, trip_in_db):
    process_a, process_b = servers
    rider = await sync_to_async(make_user)("rider")
    driver = await sync_to_async(make_user)("driver")
    rider_url = process_a.url("ws", f"/taxi/?token={await access_token(rider)}")
    driver_url = process_b.url("ws", f"/taxi/?token={await access_token(driver)}")

    async with connect(rider_url) as rider_socket, connect(driver_url) as driver_socket:
        assert rider_socket.subprotocol is None and driver_socket.subprotocol is None

        await send(rider_socket, {"type": "create.trip", "data": ADDRESSES | {"rider": rider.id}})
        requested = await receive(rider_socket)
        assert requested["type"] == "echo.message"
        assert requested["data"]["status"] == "REQUESTED"
        assert await receive(driver_socket) == requested  # offered on the other process
        trip = requested["data"]

        update = {"id": trip["id"], "rider": rider.id, "driver": driver.id} | ADDRESSES
        for status in ("STARTED", "IN_PROGRESS", "COMPLETED"):
            await send(driver_socket, {"type": "update.trip", "data": update | {"status": status}})
            changed = await receive(driver_socket)
            assert changed["type"] == "echo.message"
            assert changed["data"]["status"] == status
            assert changed["data"]["driver"]["id"] == driver.id
            assert await receive(rider_socket) == changed  # heard on the other process

    row = await trip_in_db(trip["id"])
    assert row.status == "COMPLETED" and row.driver_id == driver.id


async def test_a_native_trip_crosses_processes(servers, make_user, trip_in_db):
    process_a, process_b = servers
    rider = await sync_to_async(make_user)("rider")
    driver = await sync_to_async(make_user)("driver")
    rider_token, driver_token = await access_token(rider), await access_token(driver)
    rider_url = process_a.url("ws", f"/taxi/?token={rider_token}")
    driver_url = process_b.url("ws", f"/taxi/?token={driver_token}")
    native = {"subprotocols": [NATIVE_SUBPROTOCOL]}

    async with (
        connect(rider_url, **native) as rider_socket,
        connect(driver_url, **native) as driver_socket,
    ):
        assert rider_socket.subprotocol == driver_socket.subprotocol == NATIVE_SUBPROTOCOL
        for websocket, user in ((rider_socket, rider), (driver_socket, driver)):
            snapshot = await receive(websocket)
            assert snapshot["type"] == "snapshot"
            assert snapshot["data"]["user"]["id"] == user.id
            assert snapshot["data"]["trips"] == []
        await send(driver_socket, {"type": "driver.online", "request_id": "b-1"})
        assert await receive(driver_socket) == {
            "type": "driver.status",
            "data": {"online": True},
            "request_id": "b-1",
        }

        await send(rider_socket, {"type": "trip.request", "request_id": "a-1", "data": ADDRESSES})
        requested = await receive(rider_socket)
        assert requested["type"] == "trip.requested"
        assert requested["request_id"] == "a-1"
        trip = requested["data"]["trip"]
        assert await receive(driver_socket) == {"type": "trip.offered", "data": {"trip": trip}}

        await send(
            driver_socket,
            {"type": "trip.accept", "request_id": "b-2", "data": {"trip_id": trip["id"]}},
        )
        accepted = await receive(driver_socket)
        assert accepted["type"] == "trip.accepted"
        assert accepted["request_id"] == "b-2"
        assert accepted["data"]["trip"]["driver"]["id"] == driver.id
        assert await receive(rider_socket) == {"type": "trip.accepted", "data": accepted["data"]}

        # A second device of the rider, on the driver's process, starts from the snapshot
        # and hears what follows.
        tablet_url = process_b.url("ws", f"/taxi/?token={rider_token}")
        async with connect(tablet_url, **native) as rider_tablet:
            snapshot = await receive(rider_tablet)
            assert snapshot["data"]["trips"] == [accepted["data"]["trip"]]

            for number, status in enumerate(("IN_PROGRESS", "COMPLETED"), start=3):
                await send(
                    driver_socket,
                    {
                        "type": "trip.advance",
                        "request_id": f"b-{number}",
                        "data": {"trip_id": trip["id"], "status": status},
                    },
                )
                updated = await receive(driver_socket)
                assert updated["type"] == "trip.updated"
                assert updated["request_id"] == f"b-{number}"
                assert updated["data"]["trip"]["status"] == status
                heard = {"type": "trip.updated", "data": updated["data"]}
                assert await receive(rider_socket) == heard
                assert await receive(rider_tablet) == heard

    row = await trip_in_db(trip["id"])
    assert row.status == "COMPLETED" and row.driver_id == driver.id
