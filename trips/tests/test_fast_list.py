"""The trip list's fast path answers exactly as Django would, or leaves the request to
Django: every test compares its answer with Django's own for the same request."""

from datetime import timedelta

import pytest
from asgiref import sync
from channels.testing import HttpCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from accounts import sessions
from accounts.services import session_tokens_issue
from config import asgi
from config.http import SyncChainASGIHandler
from conftest import threads_entered
from trips.fast_list import TripListFastPath
from trips.models import Trip

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"testserver")
# Of every kind a listed trip shows: parties or none, places or none, a distance, text
# beyond ASCII (and a line separator, which DRF's renderer escapes).
TRIPS = [
    {
        "status": Trip.Status.COMPLETED,
        "distance_m": 1234.5,
        "pick_up_lat": 52.52,
        "pick_up_lng": 13.4,
    },
    {"status": Trip.Status.CANCELED, "cancel_reason": "Ça\u2028ne va pas"},
    {
        "status": Trip.Status.COMPLETED,
        "pick_up_address": "Straße 1",
        "drop_off_lat": 52.5,
        "drop_off_lng": 13.38,
    },
    {"status": Trip.Status.STARTED},
]


class Django:
    """Django's HTTP handler, noting each request the fast path left to it. Made anew,
    since Django's middleware reads the settings once, as it is made."""

    def __init__(self):
        self.handler = SyncChainASGIHandler()
        self.asked = []

    async def __call__(self, scope, receive, send):
        self.asked.append(scope["path"])
        await self.handler(scope, receive, send)


async def answer(app, path, headers, method="GET", body=b""):
    response = await HttpCommunicator(app, method, path, body, headers).get_response(timeout=10)
    # Django writes names as it has them, the fast path in lower case, as uvicorn sends.
    headers = sorted((name.lower(), value) for name, value in response["headers"])
    return response["status"], headers, response["body"]


@pytest.fixture
def compare():
    """Ask the fast path, then Django alone: the answers, and whether the fast path
    answered itself."""
    made = []

    async def compare_(path, headers, method="GET", body=b""):
        django, alone = Django(), Django()
        made.extend([django, alone])
        fast_answer = await answer(TripListFastPath(django), path, headers, method, body)
        django_answer = await answer(alone, path, headers, method, body)
        return fast_answer, django_answer, not django.asked

    yield compare_
    for django in made:
        django.handler.threads.close()


@pytest.fixture
def trips(rider, driver, make_user, make_trip):
    """The rider's trips, newest last, all driven by `driver`, and someone's open request."""
    made = [make_trip(rider, driver=driver, **fields) for fields in TRIPS]
    return [*made, make_trip(make_user("rider"))]


def bearer(user) -> tuple[bytes, bytes]:
    return b"authorization", f"Bearer {session_tokens_issue(user=user)['access']}".encode()


def test_the_application_serves_http_through_the_fast_path():
    http = asgi.application.application_mapping["http"]

    assert isinstance(http, TripListFastPath)
    assert http.enabled
    assert http.django is asgi.django_http


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?limit=2",
        "?limit=2&offset=2",
        "?offset=4&limit=2",
        "?limit=3&offset=1",
        "?limit=2&offset=9",
        "?limit=500",
        "?limit=02&offset=00",
        "?status=COMPLETED",
        "?limit=1&status=COMPLETED&offset=1",
        "?status=IN_PROGRESS",
    ],
)
@pytest.mark.parametrize("who", ["rider", "driver"])
async def test_answers_the_list_as_django_does(compare, trips, rider, driver, query, who):
    user = rider if who == "rider" else driver
    headers = [HOST, await sync.sync_to_async(bearer)(user)]

    fast, alone, answered = await compare(f"/api/trip/{query}", headers)

    assert answered
    assert fast == alone
    assert fast[0] == 200


@pytest.mark.parametrize(
    "accept",
    [None, b"*/*", b"application/json", b"application/json, text/plain, */*"],
)
async def test_answers_what_django_answers_with_json(compare, trips, rider, accept):
    headers = [HOST, await sync.sync_to_async(bearer)(rider)]
    if accept is not None:
        headers.append((b"accept", accept))

    fast, alone, answered = await compare("/api/trip/?limit=2", headers)

    assert answered
    assert fast == alone


async def test_answers_a_token_that_does_not_claim_a_role(compare, trips, rider):
    # A token made elsewhere than at log-in, without the course's claims: its user is
    # read before the trips, not confirmed by their read.
    access = await sync.sync_to_async(AccessToken.for_user)(rider)
    headers = [HOST, (b"authorization", f"Bearer {access}".encode())]

    fast, alone, answered = await compare("/api/trip/?limit=2", headers)

    assert answered
    assert fast == alone
    assert fast[0] == 200


async def test_answers_a_body_of_no_length_itself(compare, trips, rider):
    headers = [HOST, await sync.sync_to_async(bearer)(rider), (b"content-length", b"0")]

    fast, alone, answered = await compare("/api/trip/?limit=2", headers)

    assert answered
    assert fast == alone


async def test_reads_the_session_the_user_and_the_page_in_one_thread_hop(
    compare, trips, rider, monkeypatch
):
    headers = [HOST, await sync.sync_to_async(bearer)(rider)]
    hops = threads_entered(monkeypatch)
    django = Django()

    status, _headers, _body = await answer(TripListFastPath(django), "/api/trip/?limit=2", headers)
    django.handler.threads.close()

    assert status == 200
    assert not django.asked
    assert len(hops) == 1


class TestBehindAProxy:
    @pytest.fixture(autouse=True)
    def production(self, settings):
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.SECURE_SSL_REDIRECT = True
        settings.SECURE_HSTS_SECONDS = 3600
        settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
        settings.SECURE_HSTS_PRELOAD = True
        settings.SECURE_REFERRER_POLICY = "same-origin, strict-origin"

    async def test_answers_https_with_djangos_links_and_headers(self, compare, trips, rider):
        headers = [HOST, await sync.sync_to_async(bearer)(rider), (b"x-forwarded-proto", b"https")]

        fast, alone, answered = await compare("/api/trip/?limit=2&offset=1", headers)

        assert answered
        assert fast == alone
        hsts = b"max-age=3600; includeSubDomains; preload"
        assert (b"strict-transport-security", hsts) in fast[1]
        assert b'"next":"https://testserver/api/trip/?limit=2&offset=3"' in fast[2]

    @pytest.mark.parametrize("proto", [None, b"http", b"http, https"])
    async def test_leaves_what_django_redirects_to_https(self, compare, trips, rider, proto):
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]
        if proto is not None:
            headers.append((b"x-forwarded-proto", proto))

        fast, alone, answered = await compare("/api/trip/?limit=2", headers)

        assert not answered
        assert fast == alone
        assert fast[0] == 301


class TestLeavesToDjango:
    """Whatever the fast path does not answer itself, Django answers as it always has."""

    async def left(self, compare, path, headers, method="GET", body=b""):
        fast, alone, answered = await compare(path, headers, method, body)
        assert not answered
        # Django's own answer, as near as two of them are (a page may carry a new CSRF
        # token each time).
        assert fast[0] == alone[0]
        return fast[0]

    async def test_no_token(self, compare, trips):
        assert await self.left(compare, "/api/trip/", [HOST]) == 401

    @pytest.mark.parametrize(
        "authorization",
        [b"Bearer", b"Bearer a.b.c", b"Token abc", b"Bearer two tokens", b"bearer x"],
    )
    async def test_a_malformed_token(self, compare, trips, authorization):
        headers = [HOST, (b"authorization", authorization)]

        assert await self.left(compare, "/api/trip/", headers) == 401

    async def test_an_expired_token(self, compare, trips, rider):
        token = await sync.sync_to_async(AccessToken.for_user)(rider)
        token.set_exp(lifetime=-timedelta(seconds=1))
        headers = [HOST, (b"authorization", f"Bearer {token}".encode())]

        assert await self.left(compare, "/api/trip/", headers) == 401

    async def test_a_refresh_token(self, compare, trips, rider):
        refresh = (await sync.sync_to_async(session_tokens_issue)(user=rider))["refresh"]
        headers = [HOST, (b"authorization", f"Bearer {refresh}".encode())]

        assert await self.left(compare, "/api/trip/", headers) == 401

    async def test_a_token_of_a_logged_out_session(self, compare, trips, rider):
        access = (await sync.sync_to_async(session_tokens_issue)(user=rider))["access"]
        await sync.sync_to_async(sessions.revoke)(AccessToken(access)[sessions.SESSION_CLAIM])
        headers = [HOST, (b"authorization", f"Bearer {access}".encode())]

        assert await self.left(compare, "/api/trip/", headers) == 401

    async def test_a_token_of_an_inactive_user(self, compare, trips, rider):
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]
        rider.is_active = False
        await sync.sync_to_async(rider.save)()

        assert await self.left(compare, "/api/trip/", headers) == 401

    @pytest.mark.parametrize("query", ["?limit=2", "?limit=2&offset=9", ""])
    async def test_a_token_whose_user_has_another_role_now(self, compare, trips, rider, query):
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]
        rider.role = "driver"
        await sync.sync_to_async(rider.save)()

        assert await self.left(compare, f"/api/trip/{query}", headers) == 200

    async def test_a_token_of_a_user_deleted_since(self, compare, make_user):
        user = await sync.sync_to_async(make_user)("rider")
        headers = [HOST, await sync.sync_to_async(bearer)(user)]
        await sync.sync_to_async(user.delete)()

        assert await self.left(compare, "/api/trip/", headers) == 401

    @pytest.mark.parametrize(
        "query",
        [
            "?limit=0",
            "?limit=",
            "?limit=-1",
            "?limit=x",
            "?limit=1&limit=2",
            "?offset=-1&limit=2",
            "?status=BOGUS",
            "?status=",
            "?status=completed",
            "?format=json",
            "?limit=2&page=1",
            "?limit=%32",
            "?limit=1234567890123",
        ],
    )
    async def test_a_query_it_does_not_read_as_drf_does(self, compare, trips, rider, query):
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]

        assert await self.left(compare, f"/api/trip/{query}", headers) in (200, 400)

    @pytest.mark.parametrize(
        "header",
        [
            (b"accept", b"text/html"),
            (b"accept", b"application/json; indent=4"),
            (b"cookie", b"csrftoken=bad"),
            (b"x-forwarded-host", b"elsewhere.example"),
            (b"content-length", b"2"),
        ],
    )
    async def test_a_header_it_does_not_read_as_django_does(self, compare, trips, rider, header):
        headers = [HOST, await sync.sync_to_async(bearer)(rider), header]
        body = b"{}" if header[0] == b"content-length" else b""

        assert await self.left(compare, "/api/trip/", headers, body=body) in (200, 400)

    async def test_a_header_twice(self, compare, trips, rider):
        token = await sync.sync_to_async(bearer)(rider)

        assert await self.left(compare, "/api/trip/", [HOST, token, token]) == 401

    @pytest.mark.parametrize("host", [b"elsewhere.example", b"testserver:x", b""])
    async def test_a_host_django_does_not_allow(self, compare, trips, rider, host):
        headers = [(b"host", host), await sync.sync_to_async(bearer)(rider)]

        assert await self.left(compare, "/api/trip/", headers) == 400

    async def test_another_method(self, compare, trips, rider):
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]

        assert await self.left(compare, "/api/trip/", headers, method="HEAD") == 200

    async def test_another_path(self, compare, trips, rider):
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]

        assert await self.left(compare, f"/api/trip/{trips[0].id}/", headers) == 200
        assert await self.left(compare, "/api/trip", headers) == 301

    async def test_every_request_when_the_settings_differ(self, compare, trips, rider, settings):
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
        headers = [HOST, await sync.sync_to_async(bearer)(rider)]

        assert await self.left(compare, "/api/trip/?limit=2", headers) == 200
