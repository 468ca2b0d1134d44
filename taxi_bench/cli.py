"""taxi-bench: load taxi (or the raw relay) over real sockets and report what it did.

    taxi-bench users --riders 5 --drivers 5                  # over the REST API
    python manage.py bench_users --riders 20000 --drivers 1000  # thousands, on the server
    taxi-bench connections --sockets 2000 --server-pid $(cat server.pid)
    taxi-bench tracking --pairs 500 --rate 1 --duration 20

Every workload prints p50/p95/p99 latency, throughput, losses and duplicates, and the
server's memory and CPU when given its process ids (`--server-pid`, repeatable; the
processes' children count too). Only loopback targets are loaded unless
`--allow-remote` is given.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import uvloop

from taxi_bench.processes import ProcessWatch
from taxi_bench.report import generator_cpu_percent, render
from taxi_bench.runner import AsShard, InProcess, run_in_shards
from taxi_bench.target import TargetRefused, target_from_url
from taxi_bench.users import Roster, provision_over_rest
from taxi_bench.workloads import WORKLOADS
from taxi_bench.workloads.context import Context

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_RELAY_URL = "ws://127.0.0.1:8765"


def _shard(value: str) -> tuple[int, int]:
    index, _, count = value.partition("/")
    return int(index), int(count)


def _common(parser: argparse.ArgumentParser, *, base_url: str) -> None:
    parser.add_argument("--base-url", default=base_url, help="the server (default %(default)s)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="load a server that is not on loopback"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taxi-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    users = commands.add_parser("users", help="sign up and log in bench users over the API")
    _common(users, base_url=DEFAULT_BASE_URL)
    users.add_argument("--riders", type=int, default=5)
    users.add_argument("--drivers", type=int, default=5)
    users.add_argument("--out", type=Path, default=Path("bench-users.json"))

    for name, workload in WORKLOADS.items():
        sub = commands.add_parser(name, help=workload.__doc__.strip().splitlines()[0])
        _common(sub, base_url=DEFAULT_RELAY_URL if name == "relay" else DEFAULT_BASE_URL)
        sub.add_argument("--users", type=Path, default=Path("bench-users.json"))
        sub.add_argument(
            "--server-pid", type=int, action="append", default=[], help="sample this process"
        )
        sub.add_argument(
            "--processes", type=int, default=1, help="generator processes (shards) to use"
        )
        sub.add_argument(
            "--time-limit", type=float, default=600, help="hard limit on the whole run, seconds"
        )
        sub.add_argument("--json", type=Path, help="also write the outcome here")
        sub.add_argument("--shard", type=_shard, help=argparse.SUPPRESS)
        workload.add_arguments(sub)
    return parser


async def run_workload(args, argv: list[str]) -> int:
    workload = WORKLOADS[args.command]
    target = target_from_url(args.base_url, allow_remote=args.allow_remote)
    riders, drivers = workload.users_needed(args)
    roster = None
    if args.command != "relay":
        roster = Roster.load(args.users)
        roster.require(riders=riders, drivers=drivers, valid_for=args.time_limit)
    deadline = time.monotonic() + args.time_limit

    if args.shard is not None:
        index, count = args.shard
        checkpoints = AsShard()
        context = Context(target, roster and roster.shard(index, count), checkpoints, deadline)
        context.shard, context.shards = index, count
        outcome = await workload.run(context, args)
        outcome.generator_cpu = checkpoints.cpu_at
        print(json.dumps({"outcome": outcome.to_json()}), flush=True)
        return 0

    watch = ProcessWatch(args.server_pid)
    watch.start()
    try:
        if args.processes > 1:
            outcome = await run_in_shards(argv, args.processes, watch)
        else:
            checkpoints = InProcess(watch, quiet_gc=True)
            outcome = await workload.run(Context(target, roster, checkpoints, deadline), args)
            outcome.generator_cpu = checkpoints.cpu_at
    finally:
        await watch.stop()
    outcome.server = {
        **watch.report(),
        "generator_cpu_percent": generator_cpu_percent(outcome, watch.times),
    }
    print(render(outcome, workload.figures(outcome)))
    if args.json:
        data = outcome.to_json()
        data["figures"] = workload.figures(outcome)
        args.json.write_text(json.dumps(data))
    return 0


async def provision(args) -> int:
    target = target_from_url(args.base_url, allow_remote=args.allow_remote)
    roster = await provision_over_rest(target, riders=args.riders, drivers=args.drivers)
    roster.save(args.out)
    print(f"{len(roster.riders)} riders and {len(roster.drivers)} drivers written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        if args.command == "users":
            return uvloop.run(provision(args))
        return uvloop.run(run_workload(args, argv))
    except TargetRefused as refusal:
        print(f"taxi-bench: {refusal}", file=sys.stderr)
        return 2
