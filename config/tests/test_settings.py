import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL_SECRET = "k" * 10 + "ZJ3v8QpL2xN5rT7wY9aB4cD6eF1gH0iJmKoPqRsTuVwXyZ"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "secret", [None, "too-short", "taxi-development-key-never-use-in-production"]
)
def test_production_refuses_to_start_without_a_real_secret(secret):
    env = {"DEBUG": "0", "ALLOWED_HOSTS": "taxi.example.com"}
    if secret is not None:
        env["SECRET_KEY"] = secret

    result = manage("check", **env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "DEBUG",
        DEBUG="0",
        SECRET_KEY=REAL_SECRET,
        ALLOWED_HOSTS="taxi.example.com",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("burst", ["0", "-1"])
def test_a_position_burst_below_one_is_refused_at_start(burst):
    result = manage("check", POSITION_BURST=burst)

    assert result.returncode != 0
    assert "POSITION_BURST" in result.stderr


def test_a_position_burst_of_one_is_allowed():
    assert manage("check", POSITION_BURST="1").returncode == 0


@pytest.mark.parametrize(("setting", "binding"), [("1", "True"), ("0", "None")])
def test_postgresql_s_prepared_statements_can_be_turned_off(setting, binding):
    # For PgBouncer before 1.21, which cannot carry prepared statements.
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS'].get('server_side_binding'))",
        DATABASE_URL="postgres://taxi@127.0.0.1:5432/taxi",
        DATABASE_PREPARED_STATEMENTS=setting,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == binding


def threads_for_sockets(**env: str) -> int:
    result = manage(
        "shell",
        "-c",
        "from realtime.database import worker_threads; print(worker_threads.count)",
        **env,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_sockets_database_threads_are_what_the_pool_leaves_http_requests_up_to_twelve():
    postgresql = "postgres://taxi@127.0.0.1:5432/taxi"

    assert threads_for_sockets(DATABASE_URL=postgresql) == 12
    assert (
        threads_for_sockets(DATABASE_URL=postgresql, DATABASE_POOL_MAX="14", REQUEST_THREADS="3")
        == 14 - 3
    )
    assert threads_for_sockets(DATABASE_URL=postgresql, DATABASE_POOL_MAX="30") == 12
    assert threads_for_sockets(DATABASE_URL=postgresql, DATABASE_POOL_MAX="1") == 1
    assert threads_for_sockets(DATABASE_URL=postgresql, DATABASE_THREADS="16") == 16


def test_without_a_pool_sockets_database_threads_are_as_many_as_asyncio_s_executor():
    expected = min(32, (os.cpu_count() or 1) + 4)

    assert threads_for_sockets(DATABASE_URL="", DATABASE_POOL="0") == expected
    assert (
        threads_for_sockets(DATABASE_URL="postgres://taxi@127.0.0.1:5432/taxi", DATABASE_POOL="0")
        == expected
    )
