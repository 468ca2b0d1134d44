"""Trips advancing step by step, each step measured to the rider.

K rider/driver pairs each run trips round after round: the rider requests, the driver
accepts, picks up (IN_PROGRESS) and drops off (COMPLETED). Every pair takes one step
every K/rate seconds on an open-loop schedule (pairs staggered), so the server sees
`--rate` steps a second in all, and each step's event must reach the rider:
`trip.requested`, `trip.accepted`, `trip.updated` IN_PROGRESS, `trip.updated`
COMPLETED. At the rider an event is identified by its trip and the status it reports,
and latency runs from the step's scheduled time.

A driver can accept only once the rider's request has made the trip (the trip id comes
back in the rider's `trip.requested`); if it comes late, the accept goes late and its
latency, measured from the schedule, shows it. Steps of a round whose trip never came
back are still expected, so they count as lost. A trip that comes back only after the
accept gave up waiting is canceled by its rider, as a rider would cancel a request
nobody took: left open, it would have the server refuse every later request of the
rider's, and one late reply would lose the rest of the pair's run.
"""

import asyncio
import secrets
import time
from functools import partial

from taxi_bench.ledger import Ledger
from taxi_bench.outcome import Outcome
from taxi_bench.schedule import Timeline, staggered
from taxi_bench.sockets import Peer
from taxi_bench.workloads.context import Context, gather_limited
from taxi_bench.workloads.pairs import PAIR_TROUBLE, Pair, open_pair

NAME = "trip-updates"

STEPS = ("REQUESTED", "STARTED", "IN_PROGRESS", "COMPLETED")


def add_arguments(parser) -> None:
    parser.add_argument("--pairs", type=int, default=100, help="riders, each with a driver")
    parser.add_argument("--rate", type=float, default=200.0, help="trip steps a second in all")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--setup-concurrency", type=int, default=50)


def users_needed(args) -> tuple[int, int]:
    return args.pairs, args.pairs


class Rounds:
    """Which trip belongs to which pair's round, learnt from the riders' replies."""

    def __init__(self):
        self.run = secrets.token_hex(4)  # request ids must be new to the server each run
        self.by_request: dict[str, tuple[int, int]] = {}
        self.by_trip: dict[str, tuple[int, int]] = {}
        self.trip_ids: dict[tuple[int, int], asyncio.Future] = {}

    def request_id(self, pair: int, round_: int) -> str:
        request_id = f"{self.run}-{pair}-{round_}"
        self.by_request[request_id] = (pair, round_)
        self.trip_ids[(pair, round_)] = asyncio.get_running_loop().create_future()
        return request_id

    def learn(self, request_id: str, trip_id: str) -> tuple[int, int] | None:
        where = self.by_request.get(request_id)
        if where is not None:
            self.by_trip[trip_id] = where
            future = self.trip_ids[where]
            if not future.done():
                future.set_result(trip_id)
        return where


async def run(context: Context, args) -> Outcome:
    outcome = Outcome(NAME, settings=settings_of(args))
    roster = context.roster
    count = min(context.share(args.pairs), len(roster.riders), len(roster.drivers))
    pairs: list[Pair] = []
    ledger = Ledger()
    rounds = Rounds()

    def at_rider(peer: Peer, message: dict, at: float) -> None:
        kind = message.get("type")
        if kind == "trip.requested":
            trip = message["data"]["trip"]
            where = rounds.learn(message.get("request_id") or "", trip["id"])
            ledger.arrive((*where, "REQUESTED") if where else ("unknown", trip["id"]), at)
        elif kind in ("trip.accepted", "trip.updated"):
            trip = message["data"]["trip"]
            where = rounds.by_trip.get(trip["id"])
            ledger.arrive((*where, trip["status"]) if where else ("unknown", trip["id"]), at)
        elif kind == "error":
            outcome.counts[f"refused:{message['error'].get('code')}"] += 1

    cancels: set[asyncio.Task] = set()

    def cancel_when_made(pair: Pair, made: asyncio.Future) -> None:
        if made.cancelled():
            return
        outcome.counts["late_requests_canceled"] += 1
        cancel = {"type": "trip.cancel", "data": {"trip_id": made.result()}}
        task = asyncio.ensure_future(pair.rider.send(cancel))
        cancels.add(task)
        task.add_done_callback(cancels.discard)

    def at_driver(peer: Peer, message: dict, at: float) -> None:
        if message.get("type") == "error":
            outcome.counts[f"refused:{message['error'].get('code')}"] += 1

    async def set_up(index: int) -> None:
        try:
            pair = await open_pair(
                context.target, index, roster.riders[index], roster.drivers[index]
            )
        except Exception as error:
            outcome.counts[f"setup_failed:{type(error).__name__}"] += 1
            return
        # Measured from the start only: ending an earlier run's trips makes events too.
        pair.rider.listen(lambda *_: None, until=context.deadline)
        pair.driver.listen(lambda *_: None, until=context.deadline)
        try:
            await pair.end_leftover_trips()
        except PAIR_TROUBLE as error:
            outcome.counts[f"setup_failed:{error}"] += 1
            await pair.close()
            return
        pairs.append(pair)

    await gather_limited(count, args.setup_concurrency, set_up)
    outcome.counts["pairs"] = len(pairs)
    for pair in pairs:
        pair.rider.on_message, pair.driver.on_message = at_rider, at_driver
    await context.checkpoints.reach("ready")

    start = time.monotonic() + 0.1
    end = min(start + args.duration, context.deadline - args.grace)
    # Each pair steps every `period`; whole rounds only, so no trip is left half done.
    # Every pair runs as many rounds: staggered by less than a period, each pair's last
    # step still comes before `end`, and together they offer `rate` steps a second for
    # exactly those rounds, the time the rate is counted over.
    period = max(1, len(pairs)) / (args.rate / context.shards)
    round_seconds = len(STEPS) * period
    whole_rounds = int((end - start) / round_seconds)

    async def drive(index: int, pair: Pair) -> None:
        offset = staggered(index, len(pairs), period)
        timeline = Timeline(start, period, end, offset=offset, count=whole_rounds * len(STEPS))
        trip_id = None
        async for step_number, scheduled_at in timeline.ticks():
            round_, step = divmod(step_number, len(STEPS))
            ledger.expect((pair.number, round_, STEPS[step]), scheduled_at, STEPS[step])
            try:
                if step == 0:
                    trip_id = None
                    request_id = rounds.request_id(pair.number, round_)
                    await pair.rider.send(
                        {
                            "type": "trip.request",
                            "request_id": request_id,
                            "data": {
                                "pick_up_address": f"bench {request_id}",
                                "drop_off_address": "bench drop-off",
                            },
                        }
                    )
                    continue
                if step == 1:
                    # Until the round's next step is due, at most.
                    trip_id = await asyncio.wait_for(
                        asyncio.shield(rounds.trip_ids[(pair.number, round_)]),
                        timeout=period * 2,
                    )
                    message = {"type": "trip.accept", "data": {"trip_id": trip_id}}
                elif trip_id is None:
                    outcome.counts["steps_without_trip"] += 1
                    continue
                else:
                    message = {
                        "type": "trip.advance",
                        "data": {"trip_id": trip_id, "status": STEPS[step]},
                    }
                await pair.driver.send(message)
            except TimeoutError:
                outcome.counts["no_trip_to_accept"] += 1
                made = rounds.trip_ids[(pair.number, round_)]
                made.add_done_callback(partial(cancel_when_made, pair))
            except Exception as error:
                outcome.counts[f"send_failed:{type(error).__name__}"] += 1

    await asyncio.gather(*(drive(index, pair) for index, pair in enumerate(pairs)))
    offered_until = start + whole_rounds * round_seconds
    await context.measured(outcome, ledger, start=start, end=offered_until, grace=args.grace)
    for failure in await asyncio.gather(*cancels, return_exceptions=True):
        if isinstance(failure, Exception):
            outcome.counts[f"cancel_failed:{type(failure).__name__}"] += 1
    await asyncio.gather(*(pair.close() for pair in pairs))
    return outcome


def settings_of(args) -> dict:
    return {"pairs": args.pairs, "rate": args.rate, "duration_s": args.duration}


def figures(outcome: Outcome) -> dict:
    return {
        "pairs": outcome.counts.get("pairs", 0),
        "trip events delivered /s": outcome.rate(outcome.tally.received, "measured"),
        "lost": outcome.tally.lost,
        "duplicates": outcome.tally.duplicates,
    }
