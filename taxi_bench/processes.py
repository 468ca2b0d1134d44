"""Memory and CPU of the server's processes, read from /proc (Linux; nothing to install).

The processes are the ids given and all their descendants, so the id of a server that
forks workers (uvicorn with `--workers`) covers the workers too.
"""

import asyncio
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# A watch samples every `interval` seconds and stops after this many samples anyway.
MAX_SAMPLES = 20_000


def _children(pid: int) -> list[int]:
    children = []
    for task in (PROC / str(pid) / "task").glob("*/children"):
        try:
            children.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return children


def process_tree(pids: list[int]) -> list[int]:
    """`pids` and every process descended from them."""
    seen: list[int] = []
    waiting = list(pids)
    while waiting and len(seen) < 10_000:
        pid = waiting.pop()
        if pid in seen:
            continue
        seen.append(pid)
        waiting.extend(_children(pid))
    return seen


def _cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the command
    # name, which is in parentheses and may itself contain spaces.
    stat = (PROC / str(pid) / "stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_bytes(pid: int) -> int:
    pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    return pages * PAGE_SIZE


@dataclass(frozen=True)
class Sample:
    at: float
    processes: int
    rss_bytes: int
    cpu_seconds: float
    # Each process's own, to tell two busy workers from one doing all the work.
    cpu_seconds_by_pid: dict[int, float] = field(default_factory=dict)


def sample(pids: list[int]) -> Sample:
    """The processes' summed resident memory and CPU time used so far."""
    rss, cpu_by_pid = 0, {}
    for pid in process_tree(pids):
        try:
            process_rss = _rss_bytes(pid)
            cpu_by_pid[pid] = _cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue  # it exited between listing and reading
        rss += process_rss
    return Sample(time.monotonic(), len(cpu_by_pid), rss, sum(cpu_by_pid.values()), cpu_by_pid)


@dataclass
class ProcessWatch:
    """Samples the server's processes at the named checkpoints of a run, and watches
    its peak memory in between.

    With no ids it only notes when each checkpoint came, so a run against a remote
    server works unchanged.
    """

    pids: list[int]
    interval: float = 0.5
    times: dict[str, float] = field(default_factory=dict)
    marks: dict[str, Sample] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    _task: asyncio.Task | None = None

    def mark(self, name: str) -> None:
        self.times[name] = time.monotonic()
        if self.pids:
            self.marks[name] = self._sample()

    def _sample(self) -> Sample:
        now = sample(self.pids)
        self.peak_rss_bytes = max(self.peak_rss_bytes, now.rss_bytes)
        return now

    async def _watch(self) -> None:
        for _ in range(MAX_SAMPLES):
            self._sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.pids and self._task is None:
            self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def phases(self) -> list[tuple[str, str]]:
        """Each pair of consecutive checkpoints."""
        names = sorted(self.times, key=self.times.get)
        return list(itertools.pairwise(names))

    def report(self) -> dict:
        """Memory at each checkpoint, and CPU in each phase between two of them in
        percent of one core (200 is two cores busy): all the processes', and the
        busiest single process's."""
        if not self.marks:
            return {}
        cpu, busiest = {}, {}
        for first, last in self.phases():
            a, b = self.marks[first], self.marks[last]
            if b.at > a.at:
                seconds = b.at - a.at
                phase = f"{first}..{last}"
                cpu[phase] = round(100 * (b.cpu_seconds - a.cpu_seconds) / seconds, 1)
                used = [
                    spent - a.cpu_seconds_by_pid.get(pid, 0.0)
                    for pid, spent in b.cpu_seconds_by_pid.items()
                ]
                busiest[phase] = round(100 * max(used, default=0.0) / seconds, 1)
        return {
            "pids": self.pids,
            "processes": max(sample.processes for sample in self.marks.values()),
            "rss_bytes": {name: sample.rss_bytes for name, sample in self.marks.items()},
            "peak_rss_bytes": self.peak_rss_bytes,
            "cpu_percent": cpu,
            "busiest_process_cpu_percent": busiest,
        }
