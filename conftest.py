"""Test set-up shared by every app.

The suite runs on whatever `DATABASE_URL` and `REDIS_URL` point at. Tests marked
`postgres` or `redis` need the real server and are skipped, saying why, when it is not
configured. With `CI=true` (or `TAXI_REQUIRE_SERVICES=1`) a missing or unreachable
PostgreSQL or Redis fails the run instead: CI must never pass by skipping.
"""

import asyncio
import gc
import os
import secrets
import sys

import pytest
from django.conf import settings

REQUIRE_SERVICES = os.environ.get("CI", "").lower() == "true" or os.environ.get(
    "TAXI_REQUIRE_SERVICES", ""
) in {"1", "true"}


def postgres_configured() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "config.postgresql"


def redis_configured() -> bool:
    return bool(settings.REDIS_URL)


def _check_postgres() -> str | None:
    if not postgres_configured():
        return "DATABASE_URL does not point at PostgreSQL"
    import psycopg

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"],
            dbname=db["NAME"],
            connect_timeout=5,
        ).close()
    except psycopg.Error as error:
        return f"PostgreSQL is unreachable: {error}"
    return None


def _check_redis() -> str | None:
    if not redis_configured():
        return "REDIS_URL is not set"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        return f"Redis is unreachable: {error}"
    return None


# One key prefix per test session, so that runs (and leftovers of old runs) sharing a
# Redis never see each other's groups, tickets or positions.
REDIS_TEST_PREFIX = f"taxi-test-{secrets.token_hex(4)}"


def pytest_configure(config):
    if REQUIRE_SERVICES:
        problems = [p for p in (_check_postgres(), _check_redis()) if p]
        if problems:
            raise pytest.UsageError(
                "CI needs the real PostgreSQL and Redis: " + "; ".join(problems)
            )
    if redis_configured():
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = REDIS_TEST_PREFIX
        settings.CACHES["default"]["KEY_PREFIX"] = REDIS_TEST_PREFIX
        settings.REDIS_KEY_PREFIX = REDIS_TEST_PREFIX


def pytest_collection_modifyitems(config, items):
    skip_postgres = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)"
    )
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://... (CI does)")
    for item in items:
        if "postgres" in item.keywords and not postgres_configured():
            item.add_marker(skip_postgres)
        if "redis" in item.keywords and not redis_configured():
            item.add_marker(skip_redis)


def pytest_sessionfinish(session, exitstatus):
    if redis_configured():
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(match=f"{REDIS_TEST_PREFIX}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


@pytest.fixture(scope="session", autouse=True)
def _test_database_released_at_the_end(django_db_setup, django_db_blocker):
    """Release the test database before pytest-django drops it: worker threads of the
    async tests may still hold pooled connections, and PostgreSQL will not drop a
    database that is in use."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        if connection.pool is not None:
            connection.close_pool()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connection.close()


@pytest.fixture(autouse=True)
def _request_threads_closed_after_each_test():
    """A test's requests through the ASGI application leave its database connections on
    the application's kept request threads, where the next test's requests would find
    them (and pytest-django refuse them): close them between tests."""
    yield
    asgi = sys.modules.get("config.asgi")
    if asgi is not None:
        asgi.django_http.threads.close()


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    # Real hashing costs ~0.3 s a password; these tests are about the rules, not PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LOGIN_THROTTLE_RATE = ""


PASSWORD = "correct-horse-battery"


def threads_entered(monkeypatch) -> list:
    """What the running event loop hands to worker threads from now on, as it hands it
    over: asgiref's hops go through the loop's `run_in_executor`, `realtime.database`'s
    through its `worker_threads`."""
    from realtime.database import worker_threads

    loop = asyncio.get_running_loop()
    hand_over, run = loop.run_in_executor, worker_threads.run
    entered = []

    def counted(executor, work, *args):
        entered.append(work)
        return hand_over(executor, work, *args)

    def counted_run(work):
        entered.append(work)
        return run(work)

    monkeypatch.setattr(loop, "run_in_executor", counted)
    monkeypatch.setattr(worker_threads, "run", counted_run)
    return entered


@pytest.fixture
def no_collector():
    """Automatic garbage collection off for the test: what it sees freed was freed by
    its last reference going, not by the collector."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def make_user(db):
    from accounts.models import User

    serial = iter(range(1, 1_000_000))

    def make(role: str = "rider", **fields) -> User:
        number = next(serial)
        fields.setdefault("username", f"{role}{number}")
        fields.setdefault("first_name", role.title())
        fields.setdefault("last_name", f"Number{number}")
        return User.objects.create_user(password=PASSWORD, role=role, **fields)

    return make


@pytest.fixture
def rider(make_user):
    return make_user("rider")


@pytest.fixture
def driver(make_user):
    return make_user("driver")


@pytest.fixture
def make_trip(db):
    from trips.models import Trip

    def make(rider, **fields) -> Trip:
        fields.setdefault("pick_up_address", "1 Main Street")
        fields.setdefault("drop_off_address", "99 Harbour Road")
        return Trip.objects.create(rider=rider, **fields)

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def client_for():
    """An API client that sends `user`'s bearer token, as the course's clients do."""
    from rest_framework.test import APIClient

    from accounts.services import session_tokens_issue

    def make(user) -> APIClient:
        client = APIClient()
        access = session_tokens_issue(user=user)["access"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        return client

    return make
