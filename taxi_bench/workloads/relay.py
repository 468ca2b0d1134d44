"""The tracking workload against the raw relay (`python -m taxi_bench.relay`).

Same pairs, same schedule, same messages, same accounting as `tracking`; only the
server differs, so the two throughputs divide into the ratio the benchmark quotes.
"""

import asyncio
import dataclasses

from taxi_bench.outcome import Outcome
from taxi_bench.sockets import Peer, open_connection
from taxi_bench.workloads import tracking
from taxi_bench.workloads.context import Context

NAME = "relay"


def add_arguments(parser) -> None:
    tracking.add_arguments(parser)
    parser.add_argument("--relay-workers", type=int, default=1, help="as the relay was started")


def users_needed(args) -> tuple[int, int]:
    return 0, 0


async def run(context: Context, args) -> Outcome:
    outcome = Outcome(
        NAME, settings={**tracking.settings_of(args), "relay_workers": args.relay_workers}
    )
    target = context.target
    # Numbered across shards, so every pair (and its port) is one of a kind.
    numbers = range(context.shard, args.pairs, context.shards)
    gate = asyncio.Semaphore(max(1, args.setup_concurrency))
    senders: list[tracking.Sender] = []

    async def connect(number: int) -> None:
        worker = dataclasses.replace(target, port=target.port + number % args.relay_workers)
        async with gate:
            try:
                rider = Peer(await open_connection(worker.ws_url(f"/rider/{number}")))
                driver = Peer(await open_connection(worker.ws_url(f"/driver/{number}")))
            except Exception as error:
                outcome.counts[f"setup_failed:{type(error).__name__}"] += 1
                return
        rider.listen(lambda *_: None, until=context.deadline)
        driver.listen(lambda *_: None, until=context.deadline)
        senders.append(tracking.Sender(number, driver, rider, driver_id=number))

    await asyncio.gather(*(connect(number) for number in numbers))
    outcome.counts["pairs"] = len(senders)
    await tracking.drive_positions(context, args, outcome, senders)
    for sender in senders:
        await asyncio.gather(sender.rider.close(), sender.driver.close(), return_exceptions=True)
    return outcome


figures = tracking.figures
