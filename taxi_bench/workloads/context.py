"""What every workload is given to run."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from taxi_bench.ledger import Ledger
from taxi_bench.outcome import Outcome
from taxi_bench.runner import Checkpoints
from taxi_bench.target import Target
from taxi_bench.users import Roster


@dataclass
class Context:
    target: Target
    roster: Roster | None
    checkpoints: Checkpoints
    # The monotonic time by which everything, stragglers and closing included, ends.
    deadline: float
    shard: int = 0
    shards: int = 1

    def share(self, total: int) -> int:
        """This shard's part of `total` things (sockets, pairs, requests a second)."""
        return total // self.shards + (1 if self.shard < total % self.shards else 0)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def measured(
        self, outcome: Outcome, ledger: Ledger, *, start: float, end: float, grace: float
    ) -> None:
        """End a measured phase that sent from `start` to `end`: wait up to `grace` for
        stragglers, count the phase until the last arrival, and take the ledger's
        figures into `outcome`."""
        await ledger.settle(min(grace, self.remaining()))
        outcome.seconds["measured"] = max(end, ledger.last_arrival or end) - start
        outcome.take_ledger(ledger)
        await self.checkpoints.reach("measured")


async def gather_limited(
    count: int, concurrency: int, step: Callable[[int], Awaitable[None]]
) -> None:
    """`step(0)` ... `step(count - 1)`, at most `concurrency` of them at a time."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(number: int) -> None:
        async with gate:
            await step(number)

    await asyncio.gather(*(one(number) for number in range(count)))
