"""Start taxi's ASGI server the way its configuration asks for.

On the embedded default (no REDIS_URL) the channel layer lives in one process, so one
worker serves; with REDIS_URL set the workers share Redis and PostgreSQL and their
number comes from WEB_CONCURRENCY (default: one per core).
"""

import copy
import os
import sys

import uvicorn
from django.conf import settings
from uvicorn.config import LOGGING_CONFIG


def worker_count() -> int:
    if not os.environ.get("REDIS_URL"):
        if int(os.environ.get("WEB_CONCURRENCY") or 1) > 1:
            print("WEB_CONCURRENCY ignored: without REDIS_URL taxi runs one process.")
        return 1
    return int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)


def log_config() -> dict:
    """uvicorn's logging, with socket credentials taken out of every line it writes."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "config.logging.RedactCredentials"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    return config


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    workers = worker_count()
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    print(
        f"taxi is serving on http://{shown_host}:{port}/ ({workers} worker(s)). "
        f"API docs: http://{shown_host}:{port}/api/docs/  WebSocket: ws://{shown_host}:{port}/taxi/",
        flush=True,
    )
    uvicorn.run(
        "config.asgi:application",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # Per-message deflate costs ~100 KB of zlib state per socket; positions and trip
        # events are small, so compression would buy little and cost most of the memory.
        ws_per_message_deflate=False,
        # Refuse oversized frames before buffering them (the consumer checks too).
        ws_max_size=settings.WEBSOCKET_MAX_MESSAGE_BYTES,
        proxy_headers=True,
        # Each worker starts the driver-search sweeper on start-up.
        lifespan="on",
        # On a stop, sockets are told to close and their work is waited for this long,
        # then cancelled: without a bound, one task that never ends keeps the worker,
        # and a deploy, waiting (seen once in the benchmark: docs/benchmarks.md).
        timeout_graceful_shutdown=float(os.environ.get("GRACEFUL_SHUTDOWN_SECONDS") or 20),
        log_level=os.environ.get("UVICORN_LOG_LEVEL", "info"),
        log_config=log_config(),
        access_log=os.environ.get("ACCESS_LOG", "0") == "1",
    )


if __name__ == "__main__":
    sys.exit(main())
