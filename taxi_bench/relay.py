"""The raw relay: the least a server can do to carry driver positions to riders.

A minimal websockets server with no Django, no database, no channel layer and no
checks: a rider connects to `/rider/<pair>`, its driver to `/driver/<pair>`, and every
message the driver sends is parsed, reshaped into the message taxi sends a rider
(`driver.location`), and sent to that rider. Benchmark results are quoted as a ratio of
what this does on the same machine, so the figures say how much taxi's rules cost, not
how fast the machine is.

`--workers N` runs N processes on N consecutive ports (pair k on port + k mod N), the
way the relay would use N cores without any shared state.

    python -m taxi_bench.relay --port 8765 --workers 2
"""

import argparse
import asyncio
import json
import signal
import subprocess
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, serve

riders: dict[str, ServerConnection] = {}


def location_message(pair: str, data: dict) -> str:
    return json.dumps(
        {
            "type": "driver.location",
            "data": {
                "trip_id": pair,
                "driver_id": int(pair),
                "lat": data["lat"],
                "lng": data["lng"],
                "heading": data.get("heading"),
                "speed": data.get("speed"),
                "recorded_at": data.get("timestamp"),
            },
        }
    )


async def handle(connection: ServerConnection) -> None:
    role, _, pair = connection.request.path.strip("/").partition("/")
    if not pair.isdigit() or role not in {"rider", "driver"}:
        await connection.close(code=4004, reason="expected /rider/<n> or /driver/<n>")
        return
    if role == "rider":
        riders[pair] = connection
        try:
            await connection.wait_closed()
        finally:
            if riders.get(pair) is connection:
                del riders[pair]
        return
    async for frame in connection:
        rider = riders.get(pair)
        if rider is not None:
            await rider.send(location_message(pair, json.loads(frame)["data"]))


async def serve_forever(host: str, port: int) -> None:
    async with serve(handle, host, port, compression=None, ping_interval=None, backlog=4096):
        stop = asyncio.get_running_loop().create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # A second signal (the supervisor's, after the terminal's) finds it stopping.
            asyncio.get_running_loop().add_signal_handler(
                signum, lambda: stop.done() or stop.set_result(None)
            )
        print(f"relay serving on ws://{host}:{port}/", flush=True)
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m taxi_bench.relay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.workers <= 1:
        # The same event loop as taxi's server (uvicorn runs on uvloop).
        uvloop.run(serve_forever(args.host, args.port))
        return
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "taxi_bench.relay", "--host", args.host),
                *("--port", str(args.port + number), "--workers", "1"),
            ]
        )
        for number in range(args.workers)
    ]

    def stop(signum, frame):
        for worker in workers:
            worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.wait()


if __name__ == "__main__":
    main()
