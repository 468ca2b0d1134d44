"""REST at a set concurrency: riders listing their trips, or users logging in.

Each of `--concurrency` clients keeps one connection alive and sends its next request
as soon as the last is answered (a closed loop, as a pool of app users or a proxy's
upstream connections behave), for `--duration` seconds or `--requests` in all.
"""

import asyncio
import time

from taxi_bench.latency import LatencyRecorder
from taxi_bench.outcome import Outcome
from taxi_bench.rest_client import HttpConnection
from taxi_bench.workloads.context import Context

NAME = "rest"


def add_arguments(parser) -> None:
    parser.add_argument("--endpoint", choices=["trip-list", "log-in"], default="trip-list")
    parser.add_argument("--concurrency", type=int, default=32, help="clients (all shards)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop after this many")
    parser.add_argument("--path", default="/api/trip/", help="what trip-list fetches")


def users_needed(args) -> tuple[int, int]:
    return 1, 0


async def run(context: Context, args) -> Outcome:
    outcome = Outcome(NAME, settings=_settings(args))
    riders = context.roster.riders
    if not riders:
        raise SystemExit("the users file has no riders")
    clients = max(1, context.share(args.concurrency))
    budget = context.share(args.requests)
    series = args.endpoint
    latency = outcome.latency.setdefault(series, LatencyRecorder())
    password = context.roster.password

    await context.checkpoints.reach("ready")
    began = time.monotonic()
    stop_at = min(began + args.duration, context.deadline)

    async def client(number: int) -> None:
        nonlocal budget
        connection = HttpConnection(context.target)
        user = riders[number % len(riders)]
        try:
            while budget > 0 and time.monotonic() < stop_at:
                budget -= 1
                sent_at = time.monotonic()
                try:
                    if args.endpoint == "trip-list":
                        status, _ = await connection.request("GET", args.path, token=user.access)
                    else:
                        status, _ = await connection.request(
                            "POST",
                            "/api/log_in/",
                            json_body={"username": user.username, "password": password},
                        )
                except Exception as error:
                    outcome.counts[f"failed:{type(error).__name__}"] += 1
                    continue
                if status == 200:
                    latency.record(time.monotonic() - sent_at)
                    outcome.counts["ok"] += 1
                else:
                    outcome.counts[f"status:{status}"] += 1
        finally:
            await connection.close()

    await asyncio.gather(*(client(number) for number in range(clients)))
    outcome.seconds["measured"] = time.monotonic() - began
    await context.checkpoints.reach("measured")
    return outcome


def _settings(args) -> dict:
    return {"endpoint": args.endpoint, "concurrency": args.concurrency, "duration_s": args.duration}


def figures(outcome: Outcome) -> dict:
    ok = outcome.counts.get("ok", 0)
    return {
        "answered 200": ok,
        "other answers or failures": sum(
            v for k, v in outcome.counts.items() if k.startswith(("status:", "failed:"))
        ),
        "throughput /s": outcome.rate(ok, "measured"),
    }
