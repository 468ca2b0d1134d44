"""Django's HTTP side under ASGI, with one thread hop a request."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    """Runs the middleware chain and the view together in one worker-thread call.

    Under ASGI Django builds an async middleware chain, and every middleware in it that
    is not natively async (Django's own, WhiteNoise) hops from the event loop to a
    thread and back for each of its hooks: a dozen hops a request before the sync view
    hops once more (docs/benchmarks.md, finding 12). Every view here is sync, so the
    chain is built sync and run in one call off the loop. It still runs in the
    request's own thread, as Django's sync code expects (the request's database
    connection is opened and closed on that thread).
    """

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
