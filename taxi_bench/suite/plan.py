"""What the suite runs: each workload's arguments at the standard and smoke sizes."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """One workload run of the suite: its name in the report and its arguments."""

    name: str
    workload: str
    arguments: tuple[str, ...]
    # The raw relay instead of taxi.
    against_relay: bool = False
    # Quoted as a share of what the password hasher allows, which is measured just
    # before the run: the machine's speed drifts by a third within minutes.
    beside_hasher: bool = False


@dataclass(frozen=True)
class Sizes:
    riders: int
    drivers: int
    runs: tuple[Run, ...]


def _tracking(pairs: int, rate: float, duration: float) -> tuple[str, ...]:
    # One generator process holds the 10 000 sockets of 5 000 pairs within its core and
    # its open files. A second took more of the two cores than it gave: the generator
    # at 40-41 % of a core instead of 31-33 %, and tracking's p99 higher in each of
    # five pairs (docs/benchmarks.md, finding 98).
    return (
        *("--pairs", str(pairs), "--rate", str(rate), "--duration", str(duration)),
        *("--processes", "1"),
    )


# The throughput runs offer this much more than their targets. A rate is counted until
# the last message arrives, so a run offering exactly the target could only come out
# just below it (999.9 events a second for 1 000 offered, all delivered within 24 ms):
# keeping up with a little more is what shows the target held.
OVER_TARGET = 1.02


def standard_sizes() -> Sizes:
    """The issue's targets, sized for two cores with the generator on the same machine."""
    tracking = _tracking(5000, OVER_TARGET, 20)
    # More than the target, to compare taxi with the raw relay nearer their limits; not
    # 2 a second, the most the server accepts from a driver on average: at that rate every
    # stall of the loaded server beyond what POSITION_BURST absorbs would cost refusals.
    ceiling = _tracking(5000, 1.5, 15)
    return Sizes(
        # Tracking drives the first 5 000 drivers, dispatch the last 1 000.
        riders=15_000,
        drivers=6_000,
        runs=(
            Run(
                "connections",
                "connections",
                (
                    *("--sockets", "20000", "--concurrency", "200", "--hold", "10"),
                    *("--ping-seconds", "10", "--processes", "2"),
                ),
            ),
            Run(
                "trip updates",
                "trip-updates",
                ("--pairs", "500", "--rate", str(1000 * OVER_TARGET), "--duration", "20"),
            ),
            # Below the target, at a rate two cores keep up with: the latency there,
            # beside the overload above.
            Run(
                "trip updates, 250/s",
                "trip-updates",
                ("--pairs", "500", "--rate", "250", "--duration", "24"),
            ),
            Run(
                "dispatch",
                "dispatch",
                (
                    *("--drivers", "1000", "--riders", "200", "--rate", "50"),
                    *("--offered", "10", "--duration", "20"),
                ),
            ),
            Run("tracking", "tracking", tracking),
            Run("relay", "relay", (*tracking, "--relay-workers", "2"), against_relay=True),
            Run("tracking, 1.5/s a driver", "tracking", ceiling),
            Run("relay, 1.5/s a driver", "relay", (*ceiling, "--relay-workers", "2"), True),
            Run(
                "REST trip list",
                "rest",
                (
                    *("--endpoint", "trip-list", "--path", "/api/trip/?limit=20"),
                    *("--concurrency", "32", "--duration", "15"),
                ),
            ),
            Run(
                "REST log-in",
                "rest",
                ("--endpoint", "log-in", "--concurrency", "4", "--duration", "15"),
                beside_hasher=True,
            ),
        ),
    )


def smoke_sizes() -> Sizes:
    tracking = _tracking(40, 1, 3)
    return Sizes(
        riders=60,
        drivers=80,
        runs=(
            Run(
                "connections",
                "connections",
                ("--sockets", "100", "--hold", "1", "--ping-seconds", "1"),
            ),
            Run(
                "trip updates", "trip-updates", ("--pairs", "10", "--rate", "40", "--duration", "3")
            ),
            Run(
                "dispatch",
                "dispatch",
                ("--drivers", "40", "--riders", "10", "--rate", "5", "--duration", "3"),
            ),
            Run("tracking", "tracking", tracking),
            Run("relay", "relay", (*tracking, "--relay-workers", "2"), against_relay=True),
            Run("REST trip list", "rest", ("--endpoint", "trip-list", "--duration", "2")),
            Run(
                "REST log-in",
                "rest",
                ("--endpoint", "log-in", "--concurrency", "2", "--requests", "4"),
                beside_hasher=True,
            ),
        ),
    )
