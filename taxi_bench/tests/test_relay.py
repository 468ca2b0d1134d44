"""The raw relay process itself: it stops cleanly."""

import signal
import subprocess
import sys

from taxi_bench.suite.servers import free_port


def test_the_relay_stops_cleanly_on_a_second_signal():
    # The suite's terminal and its supervisor may both signal it, one after the other.
    relay = subprocess.Popen(
        [sys.executable, "-m", "taxi_bench.relay", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "relay serving" in relay.stdout.readline()
        relay.send_signal(signal.SIGTERM)
        relay.send_signal(signal.SIGINT)
        _, errors = relay.communicate(timeout=10)
    finally:
        relay.kill()

    # The second signal either finds it stopping (and exits 0) or, when the first one
    # has already taken it past its event loop, ends it: what it must never do is fail
    # while stopping.
    assert relay.returncode in (0, -signal.SIGINT)
    assert errors == ""
