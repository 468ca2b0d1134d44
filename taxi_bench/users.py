"""The riders and drivers a run acts as, and how they come to exist.

Users are made once and reused across runs. Two ways to make them, writing the same
JSON file that every workload reads:

- over the REST API (`taxi-bench users`): sign-up and log-in, as any client would, so it
  works against any deployment; it pays the password hasher for every user, so it is
  for a handful of them (and drivers made this way still need a staff member's
  approval where the server requires it);
- on the server's machine, `manage.py bench_users`: thousands in seconds, straight into
  the database, approved drivers included.
"""

import asyncio
import base64
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from taxi_bench.rest_client import HttpConnection
from taxi_bench.target import Target

USERNAME_PREFIX = "bench"
# The password every benchmark user shares; they exist only on benchmark servers.
BENCH_PASSWORD = "bench-Password-not-secret-7"


@dataclass(frozen=True)
class BenchUser:
    id: int
    username: str
    role: str
    access: str


def token_claims(access: str) -> dict:
    """The payload of a JWT, read without checking its signature: the server checks
    tokens; the generator only needs the user id and the expiry in them."""
    payload = access.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def token_expiry(access: str) -> float:
    return float(token_claims(access)["exp"])


@dataclass
class Roster:
    riders: list[BenchUser]
    drivers: list[BenchUser]
    password: str = BENCH_PASSWORD

    @classmethod
    def load(cls, path: Path) -> "Roster":
        data = json.loads(Path(path).read_text())
        users = [BenchUser(**user) for user in data["users"]]
        return cls(
            riders=[user for user in users if user.role == "rider"],
            drivers=[user for user in users if user.role == "driver"],
            password=data.get("password", BENCH_PASSWORD),
        )

    def save(self, path: Path) -> None:
        data = {
            "password": self.password,
            "users": [asdict(user) for user in self.riders + self.drivers],
        }
        Path(path).write_text(json.dumps(data))

    def require(self, *, riders: int = 0, drivers: int = 0, valid_for: float = 0) -> None:
        """Refuse a run the roster cannot serve: too few users, or tokens that would
        expire before the run ends (the server closes such sockets)."""
        if len(self.riders) < riders or len(self.drivers) < drivers:
            raise SystemExit(
                f"the users file has {len(self.riders)} riders and {len(self.drivers)} drivers; "
                f"this run needs {riders} and {drivers} (make more with `manage.py "
                "bench_users` or `taxi-bench users`)"
            )
        needed_until = time.time() + valid_for
        expiring = [
            user.username
            for user in self.riders[:riders] + self.drivers[:drivers]
            if token_expiry(user.access) < needed_until
        ]
        if expiring:
            raise SystemExit(
                f"{len(expiring)} access tokens (e.g. {expiring[0]}'s) expire before this "
                "run would end; mint fresh ones by running the provisioning again"
            )

    def shard(self, index: int, count: int) -> "Roster":
        """Every `count`-th user from `index` on: one shard's share of a sharded run."""
        return Roster(self.riders[index::count], self.drivers[index::count], self.password)


def bench_username(role: str, number: int) -> str:
    return f"{USERNAME_PREFIX}-{role}-{number}"


async def _sign_up_and_log_in(target: Target, username: str, role: str, password: str):
    connection = HttpConnection(target)
    try:
        status, body = await connection.request(
            "POST",
            "/api/sign_up/",
            json_body={
                "username": username,
                "first_name": "Bench",
                "last_name": role.title(),
                "password1": password,
                "password2": password,
                "group": role,
            },
        )
        if status != 201 and "username" not in json.loads(body or b"{}"):
            raise SystemExit(f"sign-up of {username} failed: {status} {body[:300]!r}")
        status, body = await connection.request(
            "POST", "/api/log_in/", json_body={"username": username, "password": password}
        )
        if status != 200:
            raise SystemExit(f"log-in of {username} failed: {status} {body[:300]!r}")
    finally:
        await connection.close()
    access = json.loads(body)["access"]
    return BenchUser(int(token_claims(access)["id"]), username, role, access)


async def provision_over_rest(
    target: Target, *, riders: int, drivers: int, concurrency: int = 4
) -> Roster:
    """Sign up (or find already signed up) and log in the bench users through the API."""
    gate = asyncio.Semaphore(concurrency)
    wanted = [("rider", n) for n in range(1, riders + 1)]
    wanted += [("driver", n) for n in range(1, drivers + 1)]

    async def one(role: str, number: int) -> BenchUser:
        async with gate:
            return await _sign_up_and_log_in(
                target, bench_username(role, number), role, BENCH_PASSWORD
            )

    users = await asyncio.gather(*(one(role, number) for role, number in wanted))
    return Roster(
        riders=[user for user in users if user.role == "rider"],
        drivers=[user for user in users if user.role == "driver"],
    )
