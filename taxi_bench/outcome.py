"""What a workload measured, in a form that shards can send and a parent can merge."""

from collections import Counter
from dataclasses import dataclass, field

from taxi_bench.latency import LatencyRecorder
from taxi_bench.ledger import Ledger, Tally


@dataclass
class Outcome:
    workload: str
    settings: dict = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    latency: dict[str, LatencyRecorder] = field(default_factory=dict)
    # Things counted along the way: sockets opened, requests answered, errors by code.
    counts: Counter = field(default_factory=Counter)
    # Lengths of the run's phases in seconds; shards ran them side by side, so the
    # merged length is the longest.
    seconds: dict[str, float] = field(default_factory=dict)
    # CPU seconds the generator itself used by each checkpoint (summed over shards).
    generator_cpu: dict[str, float] = field(default_factory=dict)
    # Filled in by the runner: the server's memory and CPU at the checkpoints.
    server: dict = field(default_factory=dict)

    def take_ledger(self, ledger: Ledger) -> None:
        self.tally.merge(ledger.close())
        for series, recorder in ledger.latency.items():
            self.latency.setdefault(series, LatencyRecorder()).merge(recorder)

    def merge(self, other: "Outcome") -> None:
        self.tally.merge(other.tally)
        for series, recorder in other.latency.items():
            self.latency.setdefault(series, LatencyRecorder()).merge(recorder)
        self.counts.update(other.counts)
        for phase, seconds in other.seconds.items():
            self.seconds[phase] = max(self.seconds.get(phase, 0.0), seconds)
        for mark, cpu in other.generator_cpu.items():
            self.generator_cpu[mark] = self.generator_cpu.get(mark, 0.0) + cpu

    def rate(self, count: float, phase: str) -> float | None:
        seconds = self.seconds.get(phase)
        return count / seconds if seconds else None

    def to_json(self) -> dict:
        return {
            "workload": self.workload,
            "settings": self.settings,
            "tally": vars(self.tally),
            "latency": {series: list(r.samples) for series, r in self.latency.items()},
            "counts": dict(self.counts),
            "seconds": self.seconds,
            "generator_cpu": self.generator_cpu,
            "server": self.server,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Outcome":
        return cls(
            workload=data["workload"],
            settings=data["settings"],
            tally=Tally(
                **{**data["tally"], "lost_by_series": Counter(data["tally"]["lost_by_series"])}
            ),
            latency={series: LatencyRecorder(s) for series, s in data["latency"].items()},
            counts=Counter(data["counts"]),
            seconds=data["seconds"],
            generator_cpu=data["generator_cpu"],
            server=data["server"],
        )
