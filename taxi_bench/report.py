"""Rendering an outcome for people: the numbers a run is judged by."""

import itertools

from taxi_bench.outcome import Outcome

MB = 1024 * 1024


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{value:,}"


def generator_cpu_percent(outcome: Outcome, times: dict[str, float]) -> dict[str, float]:
    """The generator's own CPU in each phase, in percent of one core."""
    names = sorted(times, key=times.get)
    cpu = {}
    for first, last in itertools.pairwise(names):
        used = outcome.generator_cpu.get(last, 0.0) - outcome.generator_cpu.get(first, 0.0)
        if times[last] > times[first]:
            cpu[f"{first}..{last}"] = round(100 * used / (times[last] - times[first]), 1)
    return cpu


def render(outcome: Outcome, figures: dict) -> str:
    settings = ", ".join(f"{name}={value}" for name, value in outcome.settings.items())
    lines = [f"{outcome.workload} ({settings})"]
    for name, value in figures.items():
        lines.append(f"  {name:<34} {_number(value)}")
    tally = outcome.tally
    if tally.expected:
        lines.append(
            f"  {'messages':<34} expected {tally.expected:,}  received {tally.received:,}  "
            f"lost {tally.lost:,}  duplicates {tally.duplicates:,}  unexpected {tally.unexpected:,}"
        )
    if tally.lost_by_series:
        lost = "  ".join(
            f"{series} {count:,}" for series, count in sorted(tally.lost_by_series.items())
        )
        lines.append(f"  {'lost, by kind':<34} {lost}")
    if outcome.latency:
        lines.append(
            f"  {'latency (ms)':<34} {'count':>9} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}"
        )
        for series, recorder in sorted(outcome.latency.items()):
            s = recorder.summary()
            lines.append(
                f"    {series:<32} {s['count']:>9,} "
                + " ".join(f"{_number(s[k]):>9}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            )
    problems = {k: v for k, v in outcome.counts.items() if ":" in k}
    for name, count in sorted(problems.items()):
        lines.append(f"  {name:<34} {count:,}")
    server = outcome.server
    if server.get("rss_bytes"):
        memory = "  ".join(f"{k} {v / MB:,.0f}" for k, v in server["rss_bytes"].items())
        lines.append(
            f"  {'server RSS (MB)':<34} {memory}  peak {server['peak_rss_bytes'] / MB:,.0f}"
        )
        cpu = "  ".join(f"{k} {v:.0f}%" for k, v in server["cpu_percent"].items())
        lines.append(f"  {'server CPU (% of a core)':<34} {cpu}")
        busiest = server.get("busiest_process_cpu_percent", {})
        cpu = "  ".join(f"{k} {v:.0f}%" for k, v in busiest.items())
        lines.append(f"  {'  of it, the busiest process':<34} {cpu}")
    if server.get("generator_cpu_percent"):
        cpu = "  ".join(f"{k} {v:.0f}%" for k, v in server["generator_cpu_percent"].items())
        lines.append(f"  {'generator CPU (% of a core)':<34} {cpu}")
    return "\n".join(lines)
