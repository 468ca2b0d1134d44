"""Database work from a socket's task (`realtime.database.db`)."""

import asyncio
import contextvars

import pytest
from django.core.cache import cache, caches
from django.db import connections

from accounts.models import User
from realtime.database import db


def users_counted() -> int:
    cache.get("anything")
    return User.objects.count()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_s_task_holds_no_connection_or_cache_objects(rider):
    async def socket_task():
        # As a consumer does, wrapping its work as it goes.
        counts = [await db(users_counted)(), await db(users_counted)()]
        # Held by the task, they would live as long as its socket.
        return counts, connections.all(initialized_only=True), caches.all(initialized_only=True)

    # A socket's task starts with nothing of Django's in its context.
    counts, *held = await asyncio.create_task(socket_task(), context=contextvars.Context())

    assert counts == [1, 1]
    assert held == [[], []]
