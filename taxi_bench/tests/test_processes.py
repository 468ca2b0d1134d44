import os
import subprocess
import sys
import time

from taxi_bench.processes import ProcessWatch, process_tree, sample


def burn_here(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_a_process_tree_includes_children():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert child.pid in process_tree([os.getpid()])
        assert sample([os.getpid()]).processes >= 2
    finally:
        child.stdin.close()
        child.wait()


def test_memory_and_cpu_between_checkpoints():
    watch = ProcessWatch([os.getpid()])
    watch.mark("before")
    ballast = bytearray(64 * 1024 * 1024)
    burn_here(0.2)
    watch.mark("after")
    report = watch.report()
    grown = report["rss_bytes"]["after"] - report["rss_bytes"]["before"]
    assert grown >= 60 * 1024 * 1024
    assert report["cpu_percent"]["before..after"] > 50
    del ballast


def test_without_process_ids_only_the_times_are_noted():
    watch = ProcessWatch([])
    watch.mark("ready")
    assert "ready" in watch.times
    assert watch.report() == {}


# Burns `seconds` of its own CPU time, says so, then waits to be told to exit: a
# process still alive when the watch reads it.
BURNER = """
import sys, time
until = time.process_time() + float(sys.argv[1])
while time.process_time() < until:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def burn_in_a_child(seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BURNER, str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def share_of_the_busiest(report: dict) -> float:
    return (
        report["busiest_process_cpu_percent"]["before..after"]
        / (report["cpu_percent"]["before..after"])
    )


def watched_while_a_child_burns(seconds: float, *, burning_here_too: bool) -> dict:
    """The watch's report of this process and a child burning `seconds` of CPU, with
    this process burning as much beside it or only waiting for it."""
    watch = ProcessWatch([os.getpid()])
    watch.mark("before")
    child = burn_in_a_child(seconds)
    try:
        if burning_here_too:
            burn_here(seconds)
        assert child.stdout.readline() == "burnt\n"
        watch.mark("after")
    finally:
        child.stdin.close()
        child.wait()
    return watch.report()


def test_the_busiest_process_is_told_from_the_whole():
    alone = watched_while_a_child_burns(0.3, burning_here_too=False)
    shared = watched_while_a_child_burns(0.3, burning_here_too=True)

    # The child did (nearly) all the work; then the two did half each.
    assert share_of_the_busiest(alone) > 0.8
    assert share_of_the_busiest(shared) < 0.75
