"""Many authenticated sockets: open them at a set concurrency, hold, ping, close.

Reports the open rate, connect latency (handshake until the socket is usable: for the
native protocol, until its snapshot arrives), the server's memory per open socket, and
the ping round trip on every held socket (a ping that gets no pong is lost).
"""

import asyncio
import time

from taxi_bench.latency import LatencyRecorder
from taxi_bench.ledger import Ledger
from taxi_bench.outcome import Outcome
from taxi_bench.schedule import sleep_until
from taxi_bench.sockets import Peer, open_taxi_socket
from taxi_bench.workloads.context import Context

NAME = "connections"


def add_arguments(parser) -> None:
    parser.add_argument("--sockets", type=int, default=1000, help="sockets to open in all")
    parser.add_argument(
        "--concurrency", type=int, default=100, help="handshakes in flight at once (all shards)"
    )
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them all open")
    parser.add_argument(
        "--ping-seconds", type=float, default=5.0, help="one ping per socket, spread over this"
    )
    parser.add_argument("--protocol", choices=["native", "course"], default="native")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="offer per-message deflate (a server that accepts it pays its memory)",
    )
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait for pongs")


def users_needed(args) -> tuple[int, int]:
    return 0, 0  # any users: riders first, then drivers, one socket each


def _pong_key(message: dict, native: bool):
    if message.get("type") != ("pong" if native else "echo.message"):
        return None
    data = message.get("data")
    return data.get("socket") if isinstance(data, dict) else None


async def run(context: Context, args) -> Outcome:
    outcome = Outcome(NAME, settings=_settings(args))
    roster = context.roster
    users = roster.riders + roster.drivers
    if not users:
        raise SystemExit("the users file has no users")
    count = context.share(args.sockets)
    native = args.protocol == "native"
    connect_latency = outcome.latency.setdefault("connect", LatencyRecorder())
    pings = Ledger()
    peers: dict[int, Peer] = {}

    def on_message(peer: Peer, message: dict, at: float) -> None:
        key = _pong_key(message, native)
        if key is not None:
            pings.arrive(key, at)

    gate = asyncio.Semaphore(max(1, context.share(args.concurrency)))

    async def open_one(number: int) -> None:
        user = users[number % len(users)]
        async with gate:
            began = time.monotonic()
            try:
                peer, _ = await open_taxi_socket(
                    context.target,
                    user.access,
                    native=native,
                    timeout=min(30, context.remaining()),
                    compression=args.compression,
                )
            except Exception as error:
                outcome.counts[f"open_failed:{type(error).__name__}"] += 1
                return
            connect_latency.record(time.monotonic() - began)
        peers[number] = peer
        peer.listen(on_message, until=context.deadline)

    await context.checkpoints.reach("ready")
    began = time.monotonic()
    await asyncio.gather(*(open_one(number) for number in range(count)))
    outcome.seconds["open"] = time.monotonic() - began
    outcome.counts["opened"] = len(peers)

    await context.checkpoints.reach("holding")
    await asyncio.sleep(min(args.hold, context.remaining()))
    outcome.counts["closed_while_held"] = sum(peer.closed for peer in peers.values())

    began = time.monotonic()
    numbers = sorted(peers)
    spacing = args.ping_seconds / max(1, len(numbers))
    for index, number in enumerate(numbers):
        scheduled_at = began + index * spacing
        await sleep_until(scheduled_at)
        pings.expect(number, scheduled_at, "ping")
        message_type = "ping" if native else "echo.message"
        try:
            await peers[number].send({"type": message_type, "data": {"socket": number}})
        except Exception:
            outcome.counts["ping_send_failed"] += 1
    await pings.settle(min(args.grace, context.remaining()))
    outcome.take_ledger(pings)
    await context.checkpoints.reach("pinged")

    began = time.monotonic()
    closing = asyncio.Semaphore(max(1, context.share(args.concurrency)))

    async def close_one(peer: Peer) -> None:
        async with closing:
            await peer.close()

    await asyncio.gather(*(close_one(peer) for peer in peers.values()))
    outcome.seconds["close"] = time.monotonic() - began
    await context.checkpoints.reach("closed")
    return outcome


def _settings(args) -> dict:
    return {
        "sockets": args.sockets,
        "concurrency": args.concurrency,
        "hold_s": args.hold,
        "protocol": args.protocol,
        "compression": args.compression,
    }


def figures(outcome: Outcome) -> dict:
    opened = outcome.counts.get("opened", 0)
    rss = outcome.server.get("rss_bytes", {})
    per_socket = None
    if opened and "ready" in rss and "holding" in rss:
        per_socket = (rss["holding"] - rss["ready"]) / opened / 1024
    connect = outcome.latency.get("connect", LatencyRecorder()).summary()
    return {
        "sockets opened": opened,
        "open failures": sum(v for k, v in outcome.counts.items() if k.startswith("open_failed")),
        "open rate /s": outcome.rate(opened, "open"),
        "connect p99 ms": connect["p99_ms"],
        "server KB per socket": per_socket,
        "closed by server while held": outcome.counts.get("closed_while_held", 0),
    }
