from asgiref import sync
from channels.testing import HttpCommunicator

from config.asgi import application


async def test_a_request_hops_to_a_thread_once_for_its_middleware_and_view(monkeypatch):
    calls = []
    hop = sync.SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await hop(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)
    request = HttpCommunicator(application, "GET", "/api/docs/", headers=[(b"host", b"localhost")])

    response = await request.get_response(timeout=10)

    assert response["status"] == 200
    # The request_started signal's receivers, then the middleware chain with the view;
    # Django's own async chain hops for every middleware hook besides.
    assert len(calls) == 2, calls
