"""Trip requests offered to the nearest available drivers.

D drivers go online at known positions (random, from a fixed seed, over a square
`--area-km` across) and keep reporting them every `--position-interval` seconds so the
server does not forget them. Riders request trips at `--rate` a second in all, on an
open-loop schedule, each from a pick-up point whose `--offered` nearest drivers are
known to the generator (points where the last of them and the next one are nearly the
same distance away are not used, so "nearest" is never a coin toss). Each of those
drivers must receive `trip.offered`; the offer is identified at the driver by the
request's unique pick-up address. Latency runs from the scheduled request time to each
offered driver, and to the last of them. An offer to any other driver is unexpected.

A rider cancels `--cancel-after` seconds after requesting (from the schedule), which
keeps drivers available and frees the rider for a later request.

The drivers and riders are the last ones of the users file, so that they are not the
tracking workload's, who stay on their trips between runs.
"""

import asyncio
import math
import random
import secrets
import time
from dataclasses import dataclass

from taxi_bench.ledger import Ledger
from taxi_bench.outcome import Outcome
from taxi_bench.schedule import Timeline, sleep_until, staggered
from taxi_bench.sockets import Peer, open_taxi_socket
from taxi_bench.workloads.context import Context, gather_limited
from taxi_bench.workloads.pairs import drive_to_the_end
from taxi_bench.workloads.tracking import CITY_LAT, CITY_LNG, location_message

NAME = "dispatch"

EARTH_RADIUS_M = 6_371_000.0
# "Nearest" must not hinge on less than this between the last offered driver and the
# next one: the server's geo index rounds positions (Redis GEO to about a metre).
NEAREST_MARGIN_M = 20.0


def add_arguments(parser) -> None:
    parser.add_argument("--drivers", type=int, default=100, help="drivers online")
    parser.add_argument("--riders", type=int, default=50, help="riders taking turns to request")
    parser.add_argument("--rate", type=float, default=10.0, help="trip requests a second")
    parser.add_argument("--offered", type=int, default=10, help="drivers each request must reach")
    parser.add_argument("--area-km", type=float, default=6.0, help="side of the drivers' square")
    parser.add_argument("--position-interval", type=float, default=5.0)
    parser.add_argument("--cancel-after", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of requests")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--setup-concurrency", type=int, default=50)


def users_needed(args) -> tuple[int, int]:
    return args.riders, args.drivers


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine), as geo indexes compute it."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@dataclass
class Area:
    """A square of `side_km` around the city centre, and random points in it."""

    side_km: float
    rng: random.Random

    def point(self, margin: float = 0.0) -> tuple[float, float]:
        half = self.side_km * 1000 / 2 * (1 - margin)
        north, east = self.rng.uniform(-half, half), self.rng.uniform(-half, half)
        lat = CITY_LAT + north / 111_320
        lng = CITY_LNG + east / (111_320 * math.cos(math.radians(CITY_LAT)))
        return round(lat, 6), round(lng, 6)


def nearest(
    point: tuple[float, float], drivers: dict[int, tuple[float, float]], count: int
) -> list[int] | None:
    """The `count` drivers nearest to `point`, or None when the cut between the last of
    them and the next one is too close to call."""
    ranked = sorted((distance_m(point, where), driver) for driver, where in drivers.items())
    if len(ranked) > count and ranked[count][0] - ranked[count - 1][0] < NEAREST_MARGIN_M:
        return None
    return [driver for _, driver in ranked[:count]]


def pick_ups(area: Area, drivers: dict, count: int, offered: int) -> list[tuple]:
    """`count` pick-up points with their nearest drivers (a bounded number of draws)."""
    chosen = []
    for _ in range(count * 20):
        if len(chosen) == count:
            break
        point = area.point(margin=0.2)
        if (nearest_drivers := nearest(point, drivers, offered)) is not None:
            chosen.append((point, nearest_drivers))
    if len(chosen) < count:
        raise SystemExit("could not place pick-ups with a clear nearest set; more drivers?")
    return chosen


async def run(context: Context, args) -> Outcome:
    if context.shards > 1:
        raise SystemExit("dispatch runs in one generator process (--processes 1)")
    outcome = Outcome(NAME, settings=settings_of(args))
    roster = context.roster
    area = Area(args.area_km, random.Random(args.seed))
    drivers_users = roster.drivers[-args.drivers :]
    riders_users = roster.riders[-args.riders :]
    positions = {user.id: area.point() for user in drivers_users}
    ledger = Ledger()
    drivers: dict[int, Peer] = {}
    riders: list[Peer] = []
    run_id = secrets.token_hex(4)

    def refused(peer: Peer, message: dict) -> None:
        if message.get("type") == "error":
            outcome.counts[f"refused:{message['error'].get('code')}"] += 1

    def at_driver(peer: Peer, message: dict, at: float) -> None:
        if message.get("type") == "trip.offered":
            ledger.arrive((message["data"]["trip"]["pick_up_address"], peer.user_id), at)
        refused(peer, message)

    trip_of_request: dict[str, str] = {}

    def at_rider(peer: Peer, message: dict, at: float) -> None:
        if message.get("type") == "trip.requested" and message.get("request_id"):
            trip_of_request[message["request_id"]] = message["data"]["trip"]["id"]
            ledger.arrive(("requested", message["request_id"]), at)
        refused(peer, message)

    async def report_position(user_id: int, peer: Peer) -> None:
        lat, lng = positions[user_id]
        try:
            await peer.send(location_message(lat, lng, round(time.time() * 1000)))
        except Exception as error:
            outcome.counts[f"position_send_failed:{type(error).__name__}"] += 1

    async def driver_online(index: int) -> None:
        user = drivers_users[index]
        try:
            peer, snapshot = await open_taxi_socket(context.target, user.access)
            peer.listen(at_driver, until=context.deadline)
            # A driver on a trip (left by another workload) is not available.
            for trip in snapshot["trips"]:
                await drive_to_the_end(peer, trip)
            reply = await peer.ask({"type": "driver.online"})
            if reply.get("type") != "driver.status":
                raise RuntimeError(reply.get("error", {}).get("code", "refused"))
        except Exception as error:
            outcome.counts[f"setup_failed:{error}"] += 1
            return
        drivers[user.id] = peer

    async def rider_ready(index: int) -> None:
        try:
            peer, snapshot = await open_taxi_socket(context.target, riders_users[index].access)
            peer.listen(at_rider, until=context.deadline)
            for trip in snapshot["trips"]:
                await peer.ask({"type": "trip.cancel", "data": {"trip_id": trip["id"]}})
        except Exception as error:
            outcome.counts[f"setup_failed:{error}"] += 1
            return
        riders.append(peer)

    await gather_limited(len(drivers_users), args.setup_concurrency, driver_online)
    await gather_limited(len(riders_users), args.setup_concurrency, rider_ready)
    outcome.counts["drivers online"] = len(drivers)
    outcome.counts["riders"] = len(riders)
    online = {user_id: positions[user_id] for user_id in drivers}
    requests = int(args.duration * args.rate)
    plan = pick_ups(area, online, requests, args.offered)
    # Positions go in once every driver is online (setting up many takes longer than the
    # server remembers a position), and a second before the first request: the server
    # does not acknowledge a position, so the schedule leaves it time to index them.
    await asyncio.gather(*(report_position(user_id, peer) for user_id, peer in drivers.items()))
    await context.checkpoints.reach("ready")

    start = time.monotonic() + 1.0
    end = min(start + args.duration, context.deadline - args.grace)

    async def keep_reporting(index: int, user_id: int, peer: Peer) -> None:
        # The next report comes at least a second after the fresh one above, so no
        # driver draws on the burst the server allows beyond two positions a second.
        offset = 1.0 + staggered(index, len(drivers), args.position_interval)
        timeline = Timeline(start, args.position_interval, end, offset=offset)
        async for _ in timeline.ticks():
            await report_position(user_id, peer)

    async def request(number: int, scheduled_at: float) -> None:
        rider = riders[number % len(riders)]
        point, offered_to = plan[number]
        address = f"bench {run_id} #{number}"
        request_id = f"{run_id}-{number}"
        ledger.expect(("requested", request_id), scheduled_at, "rider reply")
        ledger.expect_fanout(
            [(address, driver) for driver in offered_to], scheduled_at, "offer", "last offer"
        )
        try:
            await rider.send(
                {
                    "type": "trip.request",
                    "request_id": request_id,
                    "data": {
                        "pick_up_address": address,
                        "drop_off_address": "bench drop-off",
                        "pick_up_lat": point[0],
                        "pick_up_lng": point[1],
                    },
                }
            )
        except Exception:
            outcome.counts["request_send_failed"] += 1
            return
        await sleep_until(scheduled_at + args.cancel_after)
        if (trip_id := trip_of_request.get(request_id)) is not None:
            # Awaited, so that no request of this run is still open when it ends.
            try:
                await rider.ask({"type": "trip.cancel", "data": {"trip_id": trip_id}})
            except Exception as error:
                outcome.counts[f"cancel_failed:{type(error).__name__}"] += 1

    async def requests_on_schedule() -> None:
        timeline = Timeline(start, 1 / args.rate, end, count=requests)
        pending = []
        async for number, scheduled_at in timeline.ticks():
            pending.append(asyncio.create_task(request(number, scheduled_at)))
        await asyncio.gather(*pending)

    reporting = [
        keep_reporting(index, user_id, peer)
        for index, (user_id, peer) in enumerate(drivers.items())
    ]
    await asyncio.gather(requests_on_schedule(), *reporting)
    await context.measured(outcome, ledger, start=start, end=end, grace=args.grace)
    await asyncio.gather(*(peer.close() for peer in [*drivers.values(), *riders]))
    return outcome


def settings_of(args) -> dict:
    return {
        "drivers": args.drivers,
        "rate": args.rate,
        "offered": args.offered,
        "duration_s": args.duration,
    }


def figures(outcome: Outcome) -> dict:
    answered = len(outcome.latency.get("rider reply", ()))
    return {
        "drivers online": outcome.counts.get("drivers online", 0),
        "requests answered /s": outcome.rate(answered, "measured"),
        "offers delivered": len(outcome.latency.get("offer", ())),
        "offers lost": outcome.tally.lost_by_series.get("offer", 0),
        "offers to other drivers": outcome.tally.unexpected,
    }
