"""The machine and software a run was made on, and what its password hasher allows."""

import contextlib
import os
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

from taxi_bench.suite.paths import REPOSITORY


def _hash_for(seconds: float) -> int:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode("bench-password", hasher.salt())
    done, stop_at = 0, time.monotonic() + seconds
    while time.monotonic() < stop_at and done < 10_000:
        hasher.verify("bench-password", encoded)
        done += 1
    return done


def hasher_capacity(cores: int, seconds: float, rounds: int = 3) -> float:
    """Password checks a second that Django's default hasher allows on `cores` cores,
    nothing else running: the ceiling for log-ins. The best of a few rounds, since
    anything else running on the machine can only make a round slower."""
    with ProcessPoolExecutor(cores) as pool:
        return max(sum(pool.map(_hash_for, [seconds] * cores)) / seconds for _ in range(rounds))


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "open_files_limit": _open_files_limit(),
    }


def _open_files_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def versions(args) -> dict:
    found = {"Python": platform.python_version()}
    for package in (
        "Django",
        "djangorestframework",
        "channels",
        "channels-redis",
        "redis",
        "uvicorn",
        "uvloop",
        "websockets",
        "psycopg",
        "psycopg-pool",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(args.database_url) as connection:
            found["PostgreSQL"] = connection.execute("show server_version").fetchone()[0]
    with contextlib.suppress(Exception):
        import redis

        found["Redis"] = redis.Redis.from_url(args.redis_url).info("server")["redis_version"]
    with contextlib.suppress(Exception):
        found["taxi commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True
        ).stdout.strip()
    return found
