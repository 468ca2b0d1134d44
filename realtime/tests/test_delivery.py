"""Delivery is at most once: a failed send is logged, and the others still go."""

import logging

import pytest

from realtime import delivery
from realtime.delivery import deliver, to_group


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
