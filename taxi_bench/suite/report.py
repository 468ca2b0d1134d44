"""Running the workloads and writing their results into docs/benchmarks.md."""

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from taxi_bench.latency import LatencyRecorder
from taxi_bench.suite.machine import machine, versions
from taxi_bench.suite.paths import REPOSITORY, RESULTS
from taxi_bench.suite.plan import Run
from taxi_bench.suite.servers import SERVER_ENV_SHOWN, server_env

RESULTS_START = "<!-- results: written by `python -m taxi_bench.suite`; edits here are lost -->"
RESULTS_END = "<!-- end of results -->"
MB = 1024 * 1024


@dataclass
class Result:
    run: Run
    command: list[str]
    outcome: dict | None = None
    failure: str | None = None
    text: str = ""


def slug(name: str) -> str:
    """A run's name as a file name: "tracking, 1.5/s a driver" -> "tracking-1.5-per-s-a-driver"."""
    return name.replace(",", "").replace("/", "-per-").replace(" ", "-")


def run_workload(run: Run, *, base_url: str, users: Path, server_pid: int, env: dict) -> Result:
    out = RESULTS / f"{slug(run.name)}.json"
    command = [
        *(sys.executable, "-m", "taxi_bench", run.workload, *run.arguments),
        *("--base-url", base_url, "--server-pid", str(server_pid), "--json", str(out)),
    ]
    if not run.against_relay:
        command += ["--users", str(users)]
    result = Result(run, command)
    print(f"\n$ {shlex.join(command)}", flush=True)
    try:
        finished = subprocess.run(
            command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=1200
        )
    except subprocess.TimeoutExpired:
        result.failure = "still running after 20 minutes; stopped"
        return result
    result.text = finished.stdout
    print(finished.stdout, end="", flush=True)
    if finished.returncode != 0 or not out.exists():
        last_lines = (finished.stderr or finished.stdout).strip().splitlines()
        result.failure = last_lines[-1] if last_lines else f"exit status {finished.returncode}"
        print(finished.stderr[-3000:], file=sys.stderr, flush=True)
        return result
    result.outcome = json.loads(out.read_text())
    out.unlink()
    return result


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _latency(outcome: dict, series: str) -> dict:
    return LatencyRecorder(outcome["latency"].get(series, [])).summary()


def _main_series(result: Result) -> str:
    workload = result.run.workload
    return {
        "connections": "connect",
        "trip-updates": None,
        "dispatch": "last offer",
        "tracking": "position",
        "relay": "position",
    }.get(workload) or (result.run.arguments[1] if workload == "rest" else None)


def _all_series(outcome: dict) -> dict:
    merged = LatencyRecorder()
    for samples in outcome["latency"].values():
        merged.merge(LatencyRecorder(samples))
    return merged.summary()


def _throughput(result: Result) -> float | None:
    figures = result.outcome["figures"]
    for name in (
        "open rate /s",
        "trip events delivered /s",
        "requests answered /s",
        "positions delivered /s",
        "throughput /s",
    ):
        if name in figures:
            return figures[name]
    return None


def results_table(results: list[Result]) -> list[str]:
    lines = [
        "| run | throughput /s | latency p50 / p95 / p99 ms (of) | lost | duplicates | "
        "server CPU | server RSS | generator CPU |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        if result.outcome is None:
            lines.append(f"| {result.run.name} | failed: {result.failure} | | | | | | |")
            continue
        outcome = result.outcome
        series = _main_series(result)
        latency = _latency(outcome, series) if series else _all_series(outcome)
        server = outcome["server"]
        phases = server.get("cpu_percent", {})
        phase = max(phases, key=phases.get, default=None)
        busiest = phases.get(phase)
        # The busiest process in that phase: near the whole, one worker did the work.
        alone = server.get("busiest_process_cpu_percent", {}).get(phase)
        generator = max(server.get("generator_cpu_percent", {}).values(), default=None)
        rss = server.get("peak_rss_bytes")
        lines.append(
            f"| {result.run.name} | {_ms(_throughput(result))} | "
            f"{_ms(latency['p50_ms'])} / {_ms(latency['p95_ms'])} / {_ms(latency['p99_ms'])} "
            f"({series or 'all events'}) | {outcome['tally']['lost']:,} | "
            f"{outcome['tally']['duplicates']:,} | "
            f"{'-' if busiest is None else f'{busiest:.0f} %'}"
            f"{'' if alone is None else f' ({alone:.0f} % one process)'} | "
            f"{'-' if rss is None else f'{rss / MB:,.0f} MB'} | "
            f"{'-' if generator is None else f'{generator:.0f} %'} |"
        )
    return lines


@dataclass(frozen=True)
class Target:
    what: str
    wanted: float
    achieved: float | None
    higher_is_better: bool = True
    unit: str = ""

    def verdict(self) -> str:
        if self.achieved is None:
            return "not measured"
        met = (
            self.achieved >= self.wanted if self.higher_is_better else self.achieved <= self.wanted
        )
        if met:
            return "met"
        if self.higher_is_better:
            if not self.wanted:
                return "missed"
            share = self.achieved / self.wanted
            # 19 954 sockets of 20 000 is not "100 %" of a target it missed.
            return (
                f"missed: {share:.1%} of the target"
                if share > 0.99
                else f"missed: {share:.0%} of the target"
            )
        return f"missed: {self.achieved / self.wanted:.1f}x the limit" if self.wanted else "missed"


def targets(results: dict[str, Result], hasher_per_second: float | None) -> list[Target]:
    def outcome(name: str) -> dict | None:
        result = results.get(name)
        return result.outcome if result else None

    def figure(name: str, key: str):
        found = outcome(name)
        return found["figures"].get(key) if found else None

    def p99(name: str, series: str):
        found = outcome(name)
        return _latency(found, series)["p99_ms"] if found and series in found["latency"] else None

    def p99_all(name: str):
        found = outcome(name)
        return _all_series(found)["p99_ms"] if found else None

    def lost(name: str):
        found = outcome(name)
        return found["tally"]["lost"] if found else None

    held = None
    if connections := outcome("connections"):
        held = connections["counts"].get("opened", 0) - connections["counts"].get(
            "closed_while_held", 0
        )
    tracking = figure("tracking", "positions delivered /s")
    taxi_ceiling = figure("tracking, 1.5/s a driver", "positions delivered /s")
    relay_ceiling = figure("relay, 1.5/s a driver", "positions delivered /s")
    ratio = taxi_ceiling / relay_ceiling if taxi_ceiling and relay_ceiling else None
    log_ins = figure("REST log-in", "throughput /s")
    return [
        Target("connections: sockets held", 20_000, held),
        Target("connections: opened a second", 1_000, figure("connections", "open rate /s")),
        Target(
            "connections: server memory per socket (KB)",
            25,
            figure("connections", "server KB per socket"),
            higher_is_better=False,
        ),
        Target(
            "trip updates: events a second",
            1_000,
            figure("trip updates", "trip events delivered /s"),
        ),
        Target("trip updates: p99 (ms)", 50, p99_all("trip updates"), higher_is_better=False),
        Target("trip updates: lost", 0, lost("trip updates"), higher_is_better=False),
        Target(
            "dispatch: p99 to the last offered driver (ms)",
            25,
            p99("dispatch", "last offer"),
            False,
        ),
        Target(
            "dispatch: offers lost", 0, figure("dispatch", "offers lost"), higher_is_better=False
        ),
        Target("tracking: positions a second", 5_000, tracking),
        Target("tracking: p99 (ms)", 20, p99("tracking", "position"), higher_is_better=False),
        Target("tracking: lost", 0, lost("tracking"), higher_is_better=False),
        Target("tracking: throughput as a share of the raw relay's", 1 / 3, ratio),
        Target(
            "REST trip list: requests a second", 1_000, figure("REST trip list", "throughput /s")
        ),
        Target("REST trip list: p99 (ms)", 50, p99("REST trip list", "trip-list"), False),
        Target(
            "log-in: share of what the hasher allows",
            0.8,
            log_ins / hasher_per_second if log_ins and hasher_per_second else None,
        ),
    ]


def _value(number) -> str:
    if number is None:
        return "-"
    if isinstance(number, float) and number < 10:
        return f"{number:.2f}"
    return f"{number:,.0f}"


def target_table(wanted: list[Target]) -> list[str]:
    lines = [
        "### Targets",
        "",
        "| target | wanted | achieved | verdict |",
        "| --- | ---: | ---: | --- |",
    ]
    for target in wanted:
        bound = "≥" if target.higher_is_better else "≤"
        lines.append(
            f"| {target.what} | {bound} {_value(target.wanted)} | {_value(target.achieved)} "
            f"| {target.verdict()} |"
        )
    return [*lines, ""]


def render_results(
    *,
    args,
    results: list[Result],
    hasher_per_second,
    server_command,
    relay_command,
    started,
    load: tuple[float, float],
) -> str:
    by_name = {result.run.name: result for result in results}
    env = server_env(args)
    lines = [
        RESULTS_START,
        "",
        f"Run of {started:%Y-%m-%d %H:%M} UTC{' (smoke sizes)' if args.smoke else ''}, "
        f"`{shlex.join(['python', '-m', 'taxi_bench.suite', *args.argv])}`.",
        "",
        "### Machine and versions",
        "",
    ]
    for name, value in machine().items():
        lines.append(f"- {name.replace('_', ' ')}: {value}")
    lines.append("- " + ", ".join(f"{name} {version}" for name, version in versions(args).items()))
    # Anything else running on the machine slows the server and the generator alike.
    lines.append(
        f"- load average (1 min) as the run started and ended: {load[0]:.1f}, {load[1]:.1f}"
    )
    lines += [
        "",
        "The load generator runs on the same machine, competing with the server, "
        "PostgreSQL and Redis for the same cores.",
        "",
        "### Server",
        "",
        "```sh",
        *(f"{name}={shlex.quote(env[name])} \\" for name in SERVER_ENV_SHOWN),
        "SECRET_KEY=<generated> \\",
        f"  {shown(server_command)}",
        "```",
        "",
        "Raw relay baseline:",
        "",
        "```sh",
        shown(relay_command),
        "```",
        "",
        "### Results",
        "",
        "Latency is from the scheduled send time (open loop) to the receiving client. "
        "CPU is in percent of one core (200 % is both cores), the busiest phase of the run, "
        "with the busiest single process's share of it (one worker near the whole: the "
        "load was not spread); RSS is the peak of all server processes together.",
        "",
        *results_table(results),
        "",
    ]
    if not args.smoke:
        lines += target_table(targets(by_name, hasher_per_second))
    lines += [
        f"The password hasher (Django's default PBKDF2) allows {_value(hasher_per_second)} "
        f"checks a second on {args.workers} cores with nothing else running, measured just "
        "before the log-in run.",
        "",
        "### Commands and their output",
        "",
    ]
    for result in results:
        lines += [f"**{result.run.name}**", "", "```", f"$ {shown(result.command)}"]
        lines += [result.text.rstrip() or f"failed: {result.failure}", "```", ""]
    lines.append(RESULTS_END)
    return "\n".join(lines) + "\n"


def shown(command: list[str]) -> str:
    """A command as the page shows it: the interpreter as `python` and paths relative to
    the repository, so the page names no folder of the machine it ran on."""
    words = ["python" if word == sys.executable else word for word in command]
    return shlex.join(words).replace(f"{REPOSITORY}/", "")


def write_report(path: Path, results_section: str) -> None:
    """Replace the results section of `path`, keeping everything around it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if RESULTS_START in text and RESULTS_END in text:
        before = text[: text.index(RESULTS_START)]
        after = text[text.index(RESULTS_END) + len(RESULTS_END) :]
        text = before + results_section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n## Latest results\n\n" + results_section
    path.write_text(text)
