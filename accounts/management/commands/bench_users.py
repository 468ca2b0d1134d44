"""Make the riders and drivers of the benchmark, and fresh access tokens for them.

Thousands of users in seconds: they are bulk-inserted with one password hash computed
once (hashing each would take minutes), drivers already approved. Running it again
reuses the users, and the tokens in the file that stay valid long enough, so repeated
benchmark runs neither pile up users nor re-mint what still works.
"""

import json
import time
from pathlib import Path

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.services import session_tokens_issue
from taxi_bench.users import BENCH_PASSWORD, bench_username

BATCH = 1000


class Command(BaseCommand):
    help = "Create (or reuse) benchmark riders and drivers and write their access tokens."

    def add_arguments(self, parser):
        parser.add_argument("--riders", type=int, default=100)
        parser.add_argument("--drivers", type=int, default=100)
        parser.add_argument("--out", type=Path, default=Path("bench-users.json"))
        parser.add_argument(
            "--valid-for-minutes",
            type=float,
            default=10,
            help="re-mint tokens that would expire sooner than this (the run's length); "
            "tokens live JWT_ACCESS_MINUTES",
        )

    def handle(self, *, riders, drivers, out, valid_for_minutes, **options):
        started = time.monotonic()
        wanted = {bench_username("rider", n): User.Role.RIDER for n in range(1, riders + 1)}
        wanted |= {bench_username("driver", n): User.Role.DRIVER for n in range(1, drivers + 1)}
        created = self._create_missing(wanted)
        users = User.objects.filter(username__in=wanted).order_by("id")
        users = sorted(users, key=lambda user: (user.role, _number(user.username)))
        tokens, minted = self._tokens(users, out, valid_for_minutes * 60)
        out.write_text(
            json.dumps(
                {
                    "password": BENCH_PASSWORD,
                    "users": [
                        {"id": u.id, "username": u.username, "role": u.role, "access": tokens[u.id]}
                        for u in users
                    ],
                }
            )
        )
        self.stdout.write(
            f"{len(users)} users ({created} new), {minted} tokens minted, written to {out} "
            f"in {time.monotonic() - started:.1f} s"
        )

    def _create_missing(self, wanted: dict[str, str]) -> int:
        existing = set(User.objects.filter(username__in=wanted).values_list("username", flat=True))
        missing = [name for name in wanted if name not in existing]
        password = make_password(BENCH_PASSWORD)
        now = timezone.now()
        User.objects.bulk_create(
            (
                User(
                    username=name,
                    password=password,
                    first_name="Bench",
                    last_name=wanted[name].title(),
                    role=wanted[name],
                    driver_approved_at=now if wanted[name] == User.Role.DRIVER else None,
                )
                for name in missing
            ),
            batch_size=BATCH,
        )
        # Drivers made over the REST API wait for a staff member's approval.
        User.objects.filter(
            username__in=wanted, role=User.Role.DRIVER, driver_approved_at__isnull=True
        ).update(driver_approved_at=now)
        return len(missing)

    def _tokens(self, users: list[User], out: Path, valid_for: float):
        earlier = {}
        if out.exists():
            earlier = {user["id"]: user["access"] for user in json.loads(out.read_text())["users"]}
        tokens, minted = {}, 0
        with transaction.atomic():
            for user in users:
                if (access := earlier.get(user.id)) and _still_valid(access, valid_for):
                    tokens[user.id] = access
                    continue
                tokens[user.id] = session_tokens_issue(user=user)["access"]
                minted += 1
        return tokens, minted


def _still_valid(access: str, valid_for: float) -> bool:
    """Signed with this server's key and valid for `valid_for` seconds more."""
    try:
        token = AccessToken(access)
    except TokenError:
        return False
    return token["exp"] > time.time() + valid_for


def _number(username: str) -> int:
    return int(username.rsplit("-", 1)[1])
