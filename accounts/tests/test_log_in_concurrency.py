"""A log-in hashing a password must not hold up anyone else's request."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth.hashers import MD5PasswordHasher

from config.asgi import application
from conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


class GatedHasher(MD5PasswordHasher):
    """Checks passwords only when the test opens the gate, like a slow PBKDF2 would."""

    algorithm = "gated_md5"
    armed = False
    hashing = threading.Event()
    gate = threading.Event()

    def verify(self, password, encoded):
        if GatedHasher.armed:
            GatedHasher.hashing.set()
            assert GatedHasher.gate.wait(timeout=10), "the test never opened the gate"
        return super().verify(password, encoded)


@pytest.fixture
def gated_hashing(settings):
    settings.PASSWORD_HASHERS = ["accounts.tests.test_log_in_concurrency.GatedHasher"]
    GatedHasher.hashing.clear()
    GatedHasher.gate.clear()
    GatedHasher.armed = True
    yield GatedHasher
    GatedHasher.armed = False
    GatedHasher.gate.set()


def http(method: str, path: str, body: bytes = b"", headers=()) -> HttpCommunicator:
    """A request to the real ASGI application, the way the server hands it over (the
    test client's own handler runs every sync view on one thread, which servers don't)."""
    return HttpCommunicator(
        application,
        method,
        path,
        body=body,
        headers=[
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    )


async def test_other_requests_are_served_while_a_password_is_hashed(
    make_user, client_for, gated_hashing
):
    GatedHasher.armed = False
    user = await sync_to_async(make_user)("rider")
    reader = await sync_to_async(make_user)("rider")
    token = (await sync_to_async(client_for)(reader))._credentials["HTTP_AUTHORIZATION"]
    GatedHasher.armed = True
    body = json.dumps({"username": user.username, "password": PASSWORD}).encode()

    log_in = asyncio.create_task(http("POST", "/api/log_in/", body).get_response(timeout=10))
    assert await asyncio.to_thread(gated_hashing.hashing.wait, 5)

    # The log-in is stuck in the hasher; another user's request still gets through.
    trips = await http(
        "GET", "/api/trip/", headers=[(b"authorization", token.encode())]
    ).get_response(timeout=5)
    assert trips["status"] == 200
    assert not log_in.done()

    gated_hashing.gate.set()
    response = await log_in
    assert response["status"] == 200
    assert set(json.loads(response["body"])) == {"access", "refresh"}
