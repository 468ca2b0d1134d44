"""What every workload is given to run."""

import time
from dataclasses import dataclass

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
