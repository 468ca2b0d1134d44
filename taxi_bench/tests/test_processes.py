import os
import subprocess
import sys
import time

from taxi_bench.processes import ProcessWatch, process_tree, sample


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
    busy_until = time.process_time() + 0.2
    while time.process_time() < busy_until:
        pass
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
