"""Drivers on trips report positions; each position must reach the trip's rider.

K driver/rider pairs are each on a STARTED trip; every driver sends `driver.location`
at `--rate` per second on an open-loop schedule (drivers staggered evenly), each
position stamped with the wall-clock time it was scheduled for. The rider's copy names
the driver and carries that time back as `recorded_at`, so the pair (driver, time)
identifies the position at the rider: latency is measured from the schedule, a
position that never arrives is lost, one that arrives twice is a duplicate.

Pairs stay on their trips when the run ends, and the next run takes those trips over:
starting thousands of trips costs the server minutes, and the positions are what is
measured here.

The raw relay workload (`relay`) drives `taxi_bench.relay` with this same engine.
"""

import asyncio
import functools
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from taxi_bench.ledger import Ledger
from taxi_bench.outcome import Outcome
from taxi_bench.schedule import Timeline, staggered
from taxi_bench.sockets import Peer
from taxi_bench.workloads.context import Context, gather_limited
from taxi_bench.workloads.pairs import PAIR_TROUBLE, Pair, open_pair

NAME = "tracking"

# Where the drivers drive: a grid around a city centre, about 100 m apart.
CITY_LAT, CITY_LNG = 52.37, 4.89
GRID_STEP_DEGREES = 0.001
SPEED_M_S = 8.0
METRES_PER_DEGREE_LAT = 111_320.0


def add_arguments(parser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=100, help="drivers on trips, each with a rider"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="positions a second per driver")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--setup-concurrency", type=int, default=50)


def users_needed(args) -> tuple[int, int]:
    return args.pairs, args.pairs


def timestamp(ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, as apps send device time; built from whole
    milliseconds so that it reads back as exactly the same number."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}+00:00"


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    """A whole second as ISO 8601 in UTC: the positions of the same second, sent by
    every driver, share it (0.9 µs a timestamp instead of 3.3; finding 92)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def wall_ms(value) -> int | None:
    """A position's time as whole milliseconds since the epoch, from the ISO string or
    the number (seconds or milliseconds) a server sends back."""
    if isinstance(value, int | float):
        return round(value if value > 1e11 else value * 1000)
    if isinstance(value, str):
        try:
            return round(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            return None
    return None


@dataclass
class Driving:
    """One driver's route: north-east from its grid cell at SPEED_M_S."""

    lat: float
    lng: float

    @classmethod
    def for_driver(cls, number: int) -> "Driving":
        row, column = divmod(number, 100)
        return cls(CITY_LAT + row * GRID_STEP_DEGREES, CITY_LNG + column * GRID_STEP_DEGREES)

    def position(self, elapsed: float) -> tuple[float, float]:
        metres = SPEED_M_S * elapsed / math.sqrt(2)
        lat = self.lat + metres / METRES_PER_DEGREE_LAT
        lng = self.lng + metres / (METRES_PER_DEGREE_LAT * math.cos(math.radians(self.lat)))
        return round(lat, 6), round(lng, 6)


def location_message(lat: float, lng: float, ms: int) -> dict:
    return {
        "type": "driver.location",
        "data": {
            "lat": lat,
            "lng": lng,
            "heading": 45.0,
            "speed": SPEED_M_S,
            "accuracy": 5.0,
            "timestamp": timestamp(ms),
        },
    }


@dataclass
class Sender:
    """What the engine needs of a pair: who sends, who receives, and under which id
    the receiver sees the sender."""

    number: int
    driver: Peer
    rider: Peer
    driver_id: int


async def drive_positions(
    context: Context,
    args,
    outcome: Outcome,
    senders: list[Sender],
) -> None:
    """Send every scheduled position, wait for stragglers, and account for them."""
    ledger = Ledger()

    def at_rider(peer: Peer, message: dict, at: float) -> None:
        if message.get("type") != "driver.location":
            return
        data = message.get("data") or {}
        ledger.arrive((data.get("driver_id"), wall_ms(data.get("recorded_at"))), at)

    def at_driver(peer: Peer, message: dict, at: float) -> None:
        if message.get("type") == "error":
            outcome.counts[f"refused:{message['error'].get('code')}"] += 1

    for sender in senders:
        sender.rider.on_message = at_rider
        sender.driver.on_message = at_driver

    await context.checkpoints.reach("ready")
    start = time.monotonic() + 0.1
    # The wall clock at `start`: positions carry wall-clock times, latency uses the
    # monotonic clock, and this ties the two together once.
    wall_at_start = time.time() + (start - time.monotonic())
    period = 1 / args.rate
    end = min(start + args.duration, context.deadline - args.grace)

    def drive(index: int, sender: Sender) -> asyncio.Future[None]:
        route = Driving.for_driver(sender.number)

        def send(_: int, scheduled_at: float) -> None:
            ms = round((wall_at_start + scheduled_at - start) * 1000)
            lat, lng = route.position(scheduled_at - start)
            ledger.expect((sender.driver_id, ms), scheduled_at, "position")
            try:
                sender.driver.send_now(location_message(lat, lng, ms))
            except Exception:
                outcome.counts["send_failed"] += 1

        timeline = Timeline(start, period, end, offset=staggered(index, len(senders), period))
        return timeline.each(send)

    await asyncio.gather(*(drive(index, sender) for index, sender in enumerate(senders)))
    await context.measured(outcome, ledger, start=start, end=end, grace=args.grace)


async def run(context: Context, args) -> Outcome:
    outcome = Outcome(NAME, settings=settings_of(args))
    roster = context.roster
    count = min(context.share(args.pairs), len(roster.riders), len(roster.drivers))
    pairs: list[Pair] = []

    async def set_up(index: int) -> None:
        try:
            pair = await open_pair(
                context.target, index, roster.riders[index], roster.drivers[index]
            )
        except Exception as error:
            outcome.counts[f"setup_failed:{type(error).__name__}"] += 1
            return
        pair.rider.listen(lambda *_: None, until=context.deadline)
        pair.driver.listen(lambda *_: None, until=context.deadline)
        try:
            if not pair.adopt_own_trip():
                await pair.end_leftover_trips()
                await pair.start_trip()
        except PAIR_TROUBLE as error:
            outcome.counts[f"setup_failed:{error}"] += 1
            await pair.close()
            return
        pairs.append(pair)

    await gather_limited(count, args.setup_concurrency, set_up)
    outcome.counts["pairs"] = len(pairs)
    senders = [Sender(pair.number, pair.driver, pair.rider, pair.driver_user.id) for pair in pairs]
    await drive_positions(context, args, outcome, senders)
    await asyncio.gather(*(pair.close() for pair in pairs))
    return outcome


def settings_of(args) -> dict:
    return {"pairs": args.pairs, "rate_per_driver": args.rate, "duration_s": args.duration}


def figures(outcome: Outcome) -> dict:
    return {
        "pairs": outcome.counts.get("pairs", 0),
        "positions delivered /s": outcome.rate(outcome.tally.received, "measured"),
        "lost": outcome.tally.lost,
        "duplicates": outcome.tally.duplicates,
    }
