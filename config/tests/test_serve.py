"""How `python -m config.serve` starts uvicorn."""

import uvicorn

from config import serve


def started_with(monkeypatch) -> dict:
    options = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **given: options.update(given, app=app))
    serve.main()
    return options


def test_a_stop_waits_for_the_workers_tasks_twenty_seconds_unless_told(monkeypatch):
    monkeypatch.delenv("GRACEFUL_SHUTDOWN_SECONDS", raising=False)
    assert started_with(monkeypatch)["timeout_graceful_shutdown"] == 20

    monkeypatch.setenv("GRACEFUL_SHUTDOWN_SECONDS", "5")
    assert started_with(monkeypatch)["timeout_graceful_shutdown"] == 5
