"""The order the suite does things in, with every server, command and workload
replaced by a record of it."""

import pytest

from taxi_bench.suite import __main__ as suite
from taxi_bench.suite.plan import smoke_sizes, standard_sizes
from taxi_bench.suite.report import Result


@pytest.fixture
def done(monkeypatch, tmp_path):
    """What the suite did, in order: ("hasher",) or ("run", name)."""
    done = []

    class Started:
        def __init__(self, *args):
            pass

        pid = 1
        start = stop = wait_until_listening = lambda self, *args, **kwargs: None

    def hasher_capacity(cores, seconds):
        done.append(("hasher",))
        return 6.0

    def run_workload(run, **kwargs):
        done.append(("run", run.name))
        return Result(run, ["python"])

    monkeypatch.setattr(suite, "RESULTS", tmp_path)
    monkeypatch.setattr(suite, "Started", Started)
    monkeypatch.setattr(suite, "hasher_capacity", hasher_capacity)
    monkeypatch.setattr(suite, "run_workload", run_workload)
    monkeypatch.setattr(suite, "render_results", lambda **kwargs: kwargs)
    monkeypatch.setattr(suite, "write_report", lambda out, section: done.append(section))
    for name in ("database_ready", "database_vacuumed", "redis_cleared", "run_command"):
        monkeypatch.setattr(suite, name, lambda *args, **kwargs: "")
    return done


@pytest.mark.parametrize("smoke", [False, True])
def test_the_hasher_is_measured_just_before_the_log_in_run(done, smoke):
    args = suite.parse_arguments(["--redis-url", "redis://127.0.0.1:1/0", "--smoke"] * smoke)
    suite.run_suite(args)

    *steps, section = done
    sizes = smoke_sizes() if smoke else standard_sizes()
    assert [step[1] for step in steps if step[0] == "run"] == [run.name for run in sizes.runs]
    assert steps[-2:] == [("hasher",), ("run", "REST log-in")]
    assert steps.count(("hasher",)) == 1
    assert section["hasher_per_second"] == 6.0


def test_without_the_log_in_run_the_hasher_is_not_measured(done):
    args = suite.parse_arguments(
        ["--redis-url", "redis://127.0.0.1:1/0", "--only", "connections", "REST trip list"]
    )
    suite.run_suite(args)

    *steps, section = done
    assert steps == [("run", "connections"), ("run", "REST trip list")]
    assert section["hasher_per_second"] is None
