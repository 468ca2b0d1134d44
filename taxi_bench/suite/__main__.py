"""The standard benchmark: taxi run as production runs it, loaded by every workload.

    python -m taxi_bench.suite            # the standard sizes for a two-core machine
    python -m taxi_bench.suite --smoke    # every workload, tiny, in well under a minute

It creates the PostgreSQL database if needed, migrates, collects static files, makes
the bench users (reused by later runs), starts `python -m config.serve` with
`DEBUG=0`, a generated secret, no log-in throttle and `WEB_CONCURRENCY` workers on
PostgreSQL and Redis, runs each workload against it with `--server-pid`, runs the raw
relay (`taxi_bench.relay`) with the tracking workload as the baseline, measures what
the password hasher allows on this machine just before the log-in run, and writes the
results into the results section of docs/benchmarks.md (the rest of that page is left
as it is).
Everything it writes besides that page goes under bench-results/.
"""

import argparse
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from taxi_bench.suite.machine import hasher_capacity
from taxi_bench.suite.paths import REPOSITORY, RESULTS
from taxi_bench.suite.plan import smoke_sizes, standard_sizes
from taxi_bench.suite.report import render_results, run_workload, slug, write_report
from taxi_bench.suite.servers import (
    SERVER_START_SECONDS,
    Started,
    database_ready,
    database_vacuumed,
    free_port,
    private_redis_command,
    redis_cleared,
    run_command,
    server_env,
    two_free_ports,
)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m taxi_bench.suite", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taxi_bench"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="default: a private redis-server the suite starts (and stops), so the load "
        "neither disturbs nor is disturbed by anyone else's use of a shared Redis",
    )
    parser.add_argument("--redis-prefix", default="taxi-bench")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="WEB_CONCURRENCY")
    parser.add_argument("--port", type=int, default=0, help="taxi's port (default: a free one)")
    parser.add_argument("--relay-port", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run only these (names as in the report)")
    parser.add_argument(
        "--out",
        type=Path,
        help="the page to write (default docs/benchmarks.md, or bench-results/smoke.md)",
    )
    args = parser.parse_args(argv)
    args.argv = argv
    args.port = args.port or free_port()
    args.relay_port = args.relay_port or two_free_ports()
    args.out = args.out or (
        RESULTS / "smoke.md" if args.smoke else REPOSITORY / "docs" / "benchmarks.md"
    )
    return args


def _stop_on_terminate(signum, frame) -> None:
    # An exception, so that every server the suite started is stopped on the way out.
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop_on_terminate)
    if args.redis_url:
        return run_suite(args)
    port = free_port()
    redis = Started("redis", private_redis_command(port), dict(os.environ), RESULTS / "redis.log")
    try:
        redis.start()
        redis.wait_until_listening([port], timeout=SERVER_START_SECONDS)
        args.redis_url = f"redis://127.0.0.1:{port}/0"
        return run_suite(args)
    finally:
        redis.stop()


def run_suite(args) -> int:
    started = datetime.now(UTC)
    load_at_start = os.getloadavg()[0]
    sizes = smoke_sizes() if args.smoke else standard_sizes()
    runs = [run for run in sizes.runs if not args.only or run.name in args.only]
    RESULTS.mkdir(exist_ok=True)
    env = server_env(args)
    manage = [sys.executable, "manage.py"]

    print(f"Preparing {args.database_url} and Redis prefix {args.redis_prefix!r}", flush=True)
    database_ready(args.database_url)
    redis_cleared(args.redis_url, args.redis_prefix)
    run_command([*manage, "migrate", "--noinput"], env, timeout=600)
    run_command([*manage, "collectstatic", "--noinput"], env, timeout=600)
    users = RESULTS / ("users-smoke.json" if args.smoke else "users.json")
    print(
        run_command(
            [
                *(*manage, "bench_users", "--riders", str(sizes.riders)),
                *("--drivers", str(sizes.drivers), "--out", str(users)),
                *("--valid-for-minutes", "120"),
            ],
            env,
            timeout=1800,
        ),
        end="",
        flush=True,
    )

    server_command = [sys.executable, "-m", "config.serve"]
    relay_command = [
        *(sys.executable, "-m", "taxi_bench.relay"),
        *("--port", str(args.relay_port), "--workers", str(args.workers)),
    ]
    relay = Started("relay", relay_command, dict(os.environ), RESULTS / "relay.log")
    results = []
    hasher_per_second = None
    try:
        relay.start()
        relay_ports = [args.relay_port + number for number in range(args.workers)]
        relay.wait_until_listening(relay_ports, timeout=SERVER_START_SECONDS)
        for run in runs:
            if run.beside_hasher:
                hasher_per_second = hasher_capacity(args.workers, seconds=2 if args.smoke else 5)
            if run.against_relay:
                base_url, pid = f"ws://127.0.0.1:{args.relay_port}", relay.pid
                results.append(
                    run_workload(run, base_url=base_url, users=users, server_pid=pid, env=env)
                )
                continue
            # Each run gets a server of its own, started afresh on a Redis without the
            # last run's leftovers and a database without its dead rows: work queued by
            # an overloaded run (and drivers it left in the location index) must not be
            # charged to the next one.
            redis_cleared(args.redis_url, args.redis_prefix)
            database_vacuumed(args.database_url)
            log = RESULTS / f"server-{slug(run.name)}.log"
            server = Started("taxi", server_command, env, log)
            try:
                server.start()
                server.wait_until_listening([args.port], timeout=SERVER_START_SECONDS)
                base_url = f"http://127.0.0.1:{args.port}"
                results.append(
                    run_workload(
                        run, base_url=base_url, users=users, server_pid=server.pid, env=env
                    )
                )
            finally:
                server.stop()
    finally:
        relay.stop()

    section = render_results(
        args=args,
        results=results,
        hasher_per_second=hasher_per_second,
        server_command=["python", "-m", "config.serve"],
        relay_command=["python", *relay_command[1:]],
        started=started,
        load=(load_at_start, os.getloadavg()[0]),
    )
    write_report(args.out, section)
    print(f"\nWrote {args.out}", flush=True)
    failed = [result.run.name for result in results if result.outcome is None]
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
