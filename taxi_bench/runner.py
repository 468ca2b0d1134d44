"""Running a workload in one process or in several shards, with checkpoints.

A checkpoint is a named moment of a run ("ready", "holding", "measured"): the runner
samples the server's memory and CPU there. When the load comes from several generator
processes (one process cannot hold 20 000 sockets under a 20 000 open-files limit, and
one core cannot drive two), each shard stops at every checkpoint until all of them
have reached it, so the samples describe the whole load, and the phases start
together.

Shards are this same program run with `--shard I/N`: it prints one JSON line per
checkpoint and waits for a `go` line on its input, then prints its outcome.
"""

import asyncio
import gc
import json
import sys
import time
from typing import Protocol

from taxi_bench.outcome import Outcome
from taxi_bench.processes import ProcessWatch

# No checkpoint waits longer than this for the slowest shard.
CHECKPOINT_TIMEOUT = 900.0


def quiet_collector() -> None:
    """Collect garbage now, between phases, and not during them.

    Thousands of sockets make a full collection of the generator's heap take up to a
    second (measured: 700 ms with 10 000 sockets), and a pause in the generator would
    be reported as the server's latency. So automatic collection is off while a
    workload runs, and at each checkpoint the garbage is collected and what survives
    is frozen out of later collections.
    """
    gc.disable()
    gc.collect()
    gc.freeze()


class Checkpoints(Protocol):
    cpu_at: dict[str, float]

    async def reach(self, name: str) -> None: ...


class InProcess:
    """Checkpoints of a run in this one process (`quiet_gc`: see `quiet_collector`)."""

    def __init__(self, watch: ProcessWatch, *, quiet_gc: bool = False):
        self.watch = watch
        self.quiet_gc = quiet_gc
        self.cpu_at: dict[str, float] = {}

    async def reach(self, name: str) -> None:
        if self.quiet_gc:
            quiet_collector()
        self.cpu_at[name] = time.process_time()
        self.watch.mark(name)


class AsShard:
    """Checkpoints of a shard: say where it is, wait for the parent's `go`."""

    def __init__(self):
        self.cpu_at: dict[str, float] = {}
        self._input: asyncio.StreamReader | None = None

    async def _lines(self) -> asyncio.StreamReader:
        if self._input is None:
            self._input = asyncio.StreamReader()
            await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(self._input), sys.stdin
            )
        return self._input

    async def reach(self, name: str) -> None:
        quiet_collector()
        self.cpu_at[name] = time.process_time()
        print(json.dumps({"checkpoint": name}), flush=True)
        line = await asyncio.wait_for((await self._lines()).readline(), CHECKPOINT_TIMEOUT)
        if line.strip() != b"go":
            raise SystemExit("the parent of this shard went away")


async def run_in_shards(argv: list[str], shards: int, watch: ProcessWatch) -> Outcome:
    """Run `python -m taxi_bench <argv>` as `shards` processes in lock-step and merge
    their outcomes."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taxi_bench",
            *argv,
            "--shard",
            f"{index}/{shards}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,  # an outcome line carries every latency sample
        )
        for index in range(shards)
    ]
    try:
        return await _lock_step(children, watch)
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
            await child.wait()


async def _lock_step(children, watch: ProcessWatch) -> Outcome:
    merged: Outcome | None = None
    # Each round every shard reports the same checkpoint, or its outcome.
    for _ in range(1000):
        lines = await asyncio.wait_for(
            asyncio.gather(*(child.stdout.readline() for child in children)),
            CHECKPOINT_TIMEOUT,
        )
        if not all(lines):
            raise SystemExit("a shard ended without an outcome (its error is above)")
        reports = [json.loads(line) for line in lines]
        if all("outcome" in report for report in reports):
            for report in reports:
                outcome = Outcome.from_json(report["outcome"])
                if merged is None:
                    merged = outcome
                else:
                    merged.merge(outcome)
            return merged
        names = {report.get("checkpoint") for report in reports}
        if len(names) != 1 or None in names:
            raise SystemExit(f"shards out of step: {sorted(map(str, names))}")
        watch.mark(names.pop())
        for child in children:
            child.stdin.write(b"go\n")
        await asyncio.gather(*(child.stdin.drain() for child in children))
    raise SystemExit("shards reported more checkpoints than any workload has")
