"""Delivery is at most once: a failed send is logged, and the others still go. Through
a layer that sends several at once (taxi's Redis layer), several go in one call."""

import logging

import pytest

from realtime import delivery
from realtime.delivery import deliver, to_channel, to_group


class LayerDown:
    def __init__(self, failing: set[str]):
        self.failing = failing
        self.sent: list[str] = []

    async def group_send(self, group, message):
        if group in self.failing:
            raise ConnectionError(f"{group} unreachable")
        self.sent.append(group)


@pytest.mark.parametrize("others", [[], ["user.2", "user.3"]])
async def test_a_failed_delivery_is_logged_and_the_others_still_go(monkeypatch, caplog, others):
    layer = LayerDown(failing={"user.1"})
    monkeypatch.setattr(delivery, "get_channel_layer", lambda: layer)

    with caplog.at_level(logging.WARNING, logger="realtime.delivery"):
        await deliver([to_group(name, {"type": "x"}) for name in ["user.1", *others]])

    assert layer.sent == others
    assert ["user.1 unreachable" in record.getMessage() for record in caplog.records] == [True]


class LayerSendingAll(LayerDown):
    def __init__(self, failing: set[str]):
        super().__init__(failing)
        self.batches: list[list] = []

    async def send_all(self, deliveries):
        self.batches.append(deliveries)
        if self.failing & {name for _, name, _ in deliveries}:
            raise ConnectionError("Redis unreachable")


async def test_several_deliveries_go_to_the_layer_at_once_and_one_alone(monkeypatch):
    layer = LayerSendingAll(failing=set())
    monkeypatch.setattr(delivery, "get_channel_layer", lambda: layer)
    event = {"type": "x"}
    several = [to_group("user.1", event), to_group("user.2", event), to_channel("a!b", event)]

    await deliver(iter(several))
    await deliver([to_group("user.3", event)])

    assert layer.batches == [several]
    assert layer.sent == ["user.3"]


async def test_deliveries_sent_at_once_that_fail_are_logged(monkeypatch, caplog):
    layer = LayerSendingAll(failing={"user.1"})
    monkeypatch.setattr(delivery, "get_channel_layer", lambda: layer)

    with caplog.at_level(logging.WARNING, logger="realtime.delivery"):
        await deliver([to_group(name, {"type": "x"}) for name in ["user.1", "user.2"]])

    assert len(layer.batches) == 1
    assert ["Redis unreachable" in record.getMessage() for record in caplog.records] == [True]
