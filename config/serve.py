"""Start taxi's ASGI server the way its configuration asks for.

On the embedded default (no REDIS_URL) the channel layer lives in one process, so one
worker serves; with REDIS_URL set the workers share Redis and PostgreSQL and their
number comes from WEB_CONCURRENCY (default: one per core). On Linux each worker then
listens on a socket of its own (`OwnListener`).
"""

import copy
import os
import socket
import sys

import uvicorn
from django.conf import settings
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from config.logging import QUIET_SOCKETS
from config.websocket import HttpProtocol, WebSocketProtocol


def worker_count() -> int:
    if not os.environ.get("REDIS_URL"):
        if int(os.environ.get("WEB_CONCURRENCY") or 1) > 1:
            print("WEB_CONCURRENCY ignored: without REDIS_URL taxi runs one process.")
        return 1
    return int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)


def log_config() -> dict:
    """uvicorn's logging, with socket credentials taken out of every line it writes, and
    sockets' access lines kept out unless the access log is on."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "config.logging.RedactCredentials"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["loggers"][QUIET_SOCKETS] = {"level": "WARNING"}
    return config


class OwnListener:
    """A listening socket that each worker process binds for itself, on the one port.

    uvicorn's workers otherwise share one listening socket, and whichever wakes first
    accepts every connection waiting: kept-alive connections, which stay where they
    land, then often all go to one worker while the other idles (half the trip list's
    throughput in some runs: docs/benchmarks.md, finding 39). With
    `SO_REUSEPORT` the kernel spreads new connections over the workers' sockets.

    uvicorn's supervisor hands the same socket list to every worker it starts or
    restarts, pickled; this stands in that list, and each worker that unpickles it gets
    a socket of its own. The supervisor holds none of them, so a worker that dies takes
    its socket, and its share of new connections, with it until it is replaced.
    """

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port

    def __reduce__(self):
        return bound_socket, (self.host, self.port, True)


def bound_socket(host: str, port: int, shared: bool) -> socket.socket:
    """A socket bound to `host`:`port`; `shared`, other sockets of this user may bind
    it too (`SO_REUSEPORT`). A port that cannot be bound stops the server, as uvicorn's
    own binding does."""
    bound = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        bound.bind((host, port))
    except OSError as error:
        bound.close()
        print(f"taxi cannot listen on {host}:{port}: {error}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    return bound


def port_reserved(host: str, port: int) -> socket.socket:
    """A socket holding `port` (a free one if 0) for the workers, listening on nothing.

    The port is first bound unshared, to be sure it is free: a port that another server
    holds with `SO_REUSEPORT` would otherwise be shared with it, not refused."""
    with bound_socket(host, port, shared=False) as probe:
        port = probe.getsockname()[1]
    return bound_socket(host, port, shared=True)


def uvicorn_options() -> dict:
    """How taxi runs uvicorn, whatever the number of workers."""
    return dict(
        loop="uvloop",
        # uvicorn's httptools protocol, handing a socket's handshake on as it parsed it.
        http=HttpProtocol,
        # uvicorn's "websockets-sansio", holding less for each socket.
        ws=WebSocketProtocol,
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


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    workers = worker_count()
    reserved = None
    if workers > 1 and sys.platform == "linux":
        reserved = port_reserved(host, port)
        port = reserved.getsockname()[1]
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    print(
        f"taxi is serving on http://{shown_host}:{port}/ ({workers} worker(s)). "
        f"API docs: http://{shown_host}:{port}/api/docs/  WebSocket: ws://{shown_host}:{port}/taxi/",
        flush=True,
    )
    app = "config.asgi:application"
    if reserved is None:
        uvicorn.run(app, host=host, port=port, workers=workers, **uvicorn_options())
        return
    with reserved:
        config = uvicorn.Config(app, host=host, port=port, workers=workers, **uvicorn_options())
        Multiprocess(config, sockets=[OwnListener(host, port)]).run()


if __name__ == "__main__":
    sys.exit(main())
