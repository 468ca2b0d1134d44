"""Django's HTTP side under ASGI: one thread hop a request, on a few kept threads."""

import asyncio
import contextlib
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.http import HttpRequest, HttpResponseBase


class RequestThreads:
    """The threads a process runs its HTTP requests' sync code on: at most `count`
    requests at once, each on one thread for all its sync work, and the threads kept
    from one request to the next.

    Django otherwise starts a thread for every request (and one more to join it), and
    runs every request at once: 32 requests in flight made 32 threads in turn for the
    GIL, and about a fifth fewer requests a second (docs/benchmarks.md, finding 30).
    """

    def __init__(self, count: int):
        self.count = count
        self._idle: list[ThreadPoolExecutor] = []
        # One semaphore a loop: a server has one loop, tests make one each.
        self._turns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @contextlib.asynccontextmanager
    async def borrowed(self):
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Semaphore(self.count)
        async with turns:
            thread = self._idle.pop() if self._idle else self._thread()
            try:
                yield thread
            finally:
                # A request cancelled (its client gone) while its view still runs gives
                # the thread back busy: the next request on it waits behind that work.
                self._idle.append(thread)

    def close(self) -> None:
        """End the idle threads, each closing its database connections first: a
        thread's connections are its own and outlive the requests it served."""
        while self._idle:
            thread = self._idle.pop()
            thread.submit(connections.close_all).result()
            thread.shutdown()

    @staticmethod
    def _thread() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")


class SyncChainASGIHandler(ASGIHandler):
    """Runs the middleware chain and the view together in one worker-thread call.

    Under ASGI Django builds an async middleware chain, and every middleware in it that
    is not natively async (Django's own, WhiteNoise) hops from the event loop to a
    thread and back for each of its hooks: a dozen hops a request before the sync view
    hops once more (docs/benchmarks.md, finding 12). Every view here is sync, so the
    chain is built sync and run in one call off the loop. It still runs on one thread
    for the whole request, as Django's sync code expects (the request's database
    connection is opened and closed on that thread): one of `RequestThreads`.
    """

    def __init__(self):
        super().__init__()
        self.threads = RequestThreads(settings.REQUEST_THREADS)

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP here, not {scope['type']}.")
        served: list = []
        token = _served.set(served)
        try:
            # The thread is the request's thread-sensitive context: its request_started
            # receivers, middleware, view and response close all run there.
            async with (
                self.threads.borrowed() as thread,
                ThreadSensitiveContext(executor=thread),
            ):
                await self.handle(scope, receive, send)
        finally:
            _served.reset(token)
            for request, response in served:
                _references_dropped(request, response)

    async def listen_for_disconnect(self, receive):
        # Django's raises RequestAborted, which `handle` only ever ignores: the
        # exception's traceback holds the frames it passed, a reference cycle with
        # everything they hold for every request, freed only by the garbage collector
        # (docs/benchmarks.md, finding 53). Ending normally ends the request's wait the
        # same way.
        message = await receive()
        if message["type"] != "http.disconnect":
            raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")

    async def run_get_response(self, request):
        response = await super().run_get_response(request)
        # Only once the view has returned: a request whose client left mid-view is not
        # answered, and its view may still be running on its thread.
        _served.get([]).append((request, response))
        return response


# The requests a handler call answered, with their responses.
_served: ContextVar[list[tuple[HttpRequest, HttpResponseBase]]] = ContextVar("served")


def _references_dropped(request: HttpRequest, response: HttpResponseBase) -> None:
    """Let go of what an answered request, its response and its DRF view and request
    refer to. They refer to each other (the view to its request and response and its
    own bound methods, those to the view, Django's messages to the request), so,
    left as they are, each request's objects wait for the garbage collector, and every
    young collection walks a few hundred requests' worth (finding 53)."""
    context = getattr(response, "renderer_context", None) or {}
    for held in (context.get("view"), context.get("request"), response, request):
        if held is not None:
            vars(held).clear()
