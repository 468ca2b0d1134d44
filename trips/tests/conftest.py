"""Helpers for the trip tests: what the channel layer receives, and the rows as they are."""

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime import delivery
from trips.models import Trip

SENTINEL = {"type": "test.sentinel"}


def trip_rows() -> list[dict]:
    """Every trip row, every column: equal before and after means nothing was written."""
    return list(Trip.objects.order_by("id").values())


class Inbox:
    """A test channel in some channel-layer groups, read the way a socket would be.

    Deliveries happen inside the service call's commit, so by the time a test reads,
    everything that was sent is already queued; `receive_nothing` therefore needs no
    waiting: it sends itself a sentinel and checks that the sentinel comes first.
    """

    def __init__(self, layer, groups: tuple[str, ...]):
        self.layer = layer
        self.channel = f"test.inbox.{uuid.uuid4().hex}"
        for group in groups:
            async_to_sync(layer.group_add)(group, self.channel)

    def receive(self, timeout: float = 1) -> dict:
        async def receive_():
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

        return async_to_sync(receive_)()

    def receive_all(self) -> list[dict]:
        """Everything queued for this channel so far, in order."""
        async_to_sync(self.layer.send)(self.channel, SENTINEL)
        messages = []
        while (message := self.receive()) != SENTINEL:
            messages.append(message)
        return messages

    def receive_nothing(self) -> bool:
        return self.receive_all() == []


@pytest.fixture
def channel_layer(settings):
    """A fresh in-memory channel layer, whatever REDIS_URL says: these tests are about
    what the trip rules send and to whom, not about the transport."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return get_channel_layer()


@pytest.fixture
def inbox(channel_layer):
    def make(*groups: str) -> Inbox:
        return Inbox(channel_layer, groups)

    return make


@pytest.fixture
def deliveries(monkeypatch, channel_layer) -> list[delivery.Delivery]:
    """Every delivery made (after commit), in order; each still goes to the channel layer."""
    made: list[delivery.Delivery] = []
    real_deliver = delivery.deliver

    async def recording_deliver(items):
        items = list(items)
        made.extend(items)
        await real_deliver(items)

    monkeypatch.setattr(delivery, "deliver", recording_deliver)
    return made
