"""How `python -m config.serve` starts uvicorn, and where its workers listen."""

import os
import pickle
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from uvicorn.config import STARTUP_FAILURE

from config import serve

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads on Linux")
WAIT_SECONDS = 30


def test_a_stop_waits_for_the_workers_tasks_twenty_seconds_unless_told(monkeypatch):
    monkeypatch.delenv("GRACEFUL_SHUTDOWN_SECONDS", raising=False)
    assert serve.uvicorn_options()["timeout_graceful_shutdown"] == 20

    monkeypatch.setenv("GRACEFUL_SHUTDOWN_SECONDS", "5")
    assert serve.uvicorn_options()["timeout_graceful_shutdown"] == 5


@linux_only
def test_each_process_that_unpickles_the_listener_binds_a_socket_of_its_own():
    with serve.port_reserved("127.0.0.1", 0) as reserved:
        port = reserved.getsockname()[1]
        pickled = pickle.dumps(serve.OwnListener("127.0.0.1", port))

        with pickle.loads(pickled) as first, pickle.loads(pickled) as second:
            assert first.fileno() != second.fileno()
            assert first.getsockname() == second.getsockname() == ("127.0.0.1", port)
            assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


@linux_only
def test_a_port_another_server_listens_on_is_refused_even_if_it_would_share(capsys):
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()

        with pytest.raises(SystemExit) as stopped:
            serve.port_reserved("127.0.0.1", other.getsockname()[1])

    assert stopped.value.code == STARTUP_FAILURE
    assert "taxi cannot listen on 127.0.0.1:" in capsys.readouterr().err


# --- The server itself, with two workers -------------------------------------------------


def listening_socket_inodes(port: int) -> set[str]:
    """The inodes of the IPv4 sockets listening on `port`, from the kernel's table."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        if local_port == port and state == "0A":  # TCP_LISTEN
            inodes.add(inode)
    return inodes


def socket_inodes_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed while listed
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def workers_listening(server_pid: int, port: int, count: int) -> dict[int, set[str]]:
    """Each worker's listening sockets, once `count` workers listen (bounded wait: the
    supervisor starts and replaces them in its own time, and says nothing of it)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        listening = listening_socket_inodes(port)
        workers = {
            pid: held
            for pid in children_of(server_pid)
            if (held := socket_inodes_of(pid) & listening)
        }
        if len(workers) == count:
            return workers
        if time.monotonic() > deadline:
            pytest.fail(f"{count} workers not listening in {WAIT_SECONDS} s: {workers}")
        time.sleep(0.05)


def wait_until_dead(pid: int) -> None:
    """Until `pid` has exited (a zombie is done); bounded."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state == "Z":
            return
        if time.monotonic() > deadline:
            pytest.fail(f"process {pid} still alive {WAIT_SECONDS} s after SIGKILL")
        time.sleep(0.01)


def wait_until_not_listening(inodes: set[str], port: int) -> None:
    """Until none of the sockets `inodes` listens on `port`; bounded. The kernel
    releases a dead process's sockets a moment after the process has exited (on a work
    queue), and a connection that reaches one in that moment is reset."""
    deadline = time.monotonic() + WAIT_SECONDS
    while inodes & listening_socket_inodes(port):
        if time.monotonic() > deadline:
            pytest.fail(f"sockets {inodes} still listening {WAIT_SECONDS} s on")
        time.sleep(0.01)


def answered(url: str) -> int:
    """The status of a request on a new connection."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def two_workers(transactional_db, tmp_path_factory):
    from realtime.tests.servers import running_servers

    with running_servers(
        ["two-workers"], tmp_path_factory.mktemp("serve"), WEB_CONCURRENCY="2"
    ) as (server,):
        yield server


@linux_only
@pytest.mark.postgres
@pytest.mark.redis
def test_each_worker_listens_on_a_socket_of_its_own_and_the_supervisor_on_none(two_workers):
    workers = workers_listening(two_workers.process.pid, two_workers.port, count=2)

    first, second = workers.values()
    assert len(first) == len(second) == 1 and first != second
    assert not socket_inodes_of(two_workers.process.pid) & listening_socket_inodes(two_workers.port)


@linux_only
@pytest.mark.postgres
@pytest.mark.redis
def test_a_dead_worker_s_share_of_new_connections_goes_to_the_others_until_replaced(
    two_workers,
):
    workers = workers_listening(two_workers.process.pid, two_workers.port, count=2)
    dead, survivor = workers
    os.kill(dead, signal.SIGKILL)
    wait_until_dead(dead)
    wait_until_not_listening(workers[dead], two_workers.port)

    # Until the supervisor notices, only the survivor listens: had anything kept the
    # dead worker's socket open, the connections the kernel gave it would hang.
    assert [answered(two_workers.url("http", "/api/trip/")) for _ in range(20)] == [401] * 20

    replaced = workers_listening(two_workers.process.pid, two_workers.port, count=2)
    assert dead not in replaced and survivor in replaced
    assert [answered(two_workers.url("http", "/api/trip/")) for _ in range(20)] == [401] * 20
