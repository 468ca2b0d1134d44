"""The command line end to end: the raw relay as a server, the generator in two shards."""

import json
import subprocess
import sys

import pytest

from taxi_bench.cli import main
from taxi_bench.suite.paths import REPOSITORY
from taxi_bench.suite.servers import two_free_ports
from taxi_bench.tests.conftest import ServerProcess


@pytest.fixture
def relay_server():
    port = two_free_ports()
    command = [sys.executable, "-m", "taxi_bench.relay", "--port", str(port), "--workers", "2"]
    server = ServerProcess(command, env=None, port=port)
    server.wait_for(
        f"serving on ws://127.0.0.1:{port}/", f"serving on ws://127.0.0.1:{port + 1}/", timeout=30
    )
    yield server
    server.stop()


def test_the_relay_workload_in_two_shards(relay_server, tmp_path):
    out = tmp_path / "relay.json"
    command = [
        *(sys.executable, "-m", "taxi_bench", "relay"),
        *("--base-url", f"ws://127.0.0.1:{relay_server.port}", "--relay-workers", "2"),
        *("--pairs", "4", "--rate", "4", "--duration", "1", "--grace", "2"),
        *("--processes", "2", "--server-pid", str(relay_server.pid), "--json", str(out)),
    ]
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    outcome = json.loads(out.read_text())
    assert outcome["counts"]["pairs"] == 4
    tally = outcome["tally"]
    assert (tally["expected"], tally["received"], tally["lost"], tally["duplicates"]) == (
        16,
        16,
        0,
        0,
    )
    assert len(outcome["latency"]["position"]) == 16
    # Both shards reached every checkpoint, where the relay's processes were sampled.
    assert set(outcome["server"]["rss_bytes"]) == {"ready", "measured"}
    assert outcome["server"]["processes"] == 3  # the relay and its two workers
    assert "positions delivered /s" in finished.stdout


def test_a_remote_target_is_refused(capsys):
    assert main(["rest", "--base-url", "http://192.0.2.10:8000", "--users", "none.json"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
