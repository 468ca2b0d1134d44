"""The logged-out sessions, as each server process knows them (with Redis).

Every authenticated request and every socket's handshake asks whether its token's
session was logged out, and the answer was a Redis round trip each time, from a
worker thread (docs/benchmarks.md, finding 49). Each server process now keeps a copy:

- A log-out writes its session into a sorted set in Redis, scored with the time its
  last access token expires, and publishes it, in one transaction; the process that
  made it adds it to its own copy at once.
- Every process follows the publications (`RevokedSessions.follow`, started with the
  server). It subscribes first and loads the set after, so that nothing published
  before it subscribed is missed, and it loads the set again whenever it subscribes
  again.
- The copy answers only while it is trusted: loaded, and heard from within
  `HEARD_WITHIN` seconds (the subscription is pinged when it is quiet). Before that,
  after a lost subscription, and in processes that follow nothing (commands, tests),
  the answer is read from Redis, as before.

A log-out is therefore known at once in the process that made it, and in the others
once its publication reaches them: a request in that moment is let through, as one
that had read Redis a moment before the log-out would have been.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import redis
import redis.asyncio

logger = logging.getLogger(__name__)

# A copy that has heard nothing from Redis for this long is not trusted: its
# subscription may be gone without a word (the network, not Redis, failing).
HEARD_WITHIN = 3.0
# A quiet subscription is pinged this often, so that a live one is heard from.
PING_EVERY = 1.0
# How long a lost subscription waits before subscribing again.
RESUBSCRIBE_AFTER = 1.0
# How often the copy lets go of log-outs whose tokens have expired.
PRUNE_EVERY = 60.0


class RevokedSessionsCopy:
    """One process's copy: each logged-out session and when its tokens expire (epoch
    seconds). Changed on the event loop, read from worker threads: each change
    replaces or adds a whole entry, which the GIL keeps whole."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._loaded = False
        self._heard_at = float("-inf")

    def trusted(self) -> bool:
        return self._loaded and time.monotonic() - self._heard_at < HEARD_WITHIN

    def revoked(self, sid: str) -> bool:
        until = self._until.get(sid)
        return until is not None and until > time.time()

    def add(self, sid: str, until: float) -> None:
        self._until[sid] = until

    def load(self, entries: dict[str, float]) -> None:
        self._until = entries
        self._loaded = True
        self.heard()

    def heard(self) -> None:
        self._heard_at = time.monotonic()

    def lost(self) -> None:
        self._loaded = False

    def expired_dropped(self) -> None:
        now = time.time()
        self._until = {sid: until for sid, until in self._until.items() if until > now}


class RevokedSessions:
    """The logged-out sessions in Redis, under `prefix`, with this process's copy."""

    def __init__(self, url: str, prefix: str):
        self.key = self.channel = f"{prefix}:revoked-sessions"
        self.copy = RevokedSessionsCopy()
        self._url = url
        # redis-py's sync client is thread-safe: it takes a pooled connection a command.
        self._redis = redis.Redis.from_url(url, socket_timeout=10)
        # Each connection of this process's subscription is named, so that it can be
        # told apart in Redis's list of clients.
        self.client_name = f"{prefix}:revoked-sessions:{uuid.uuid4().hex[:12]}"
        self._following = _Following()

    def revoke(self, sid: str, until: float) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {sid: until})
            pipe.zremrangebyscore(self.key, "-inf", time.time())
            pipe.publish(self.channel, f"{until!r} {sid}")
            pipe.execute()
        self.copy.add(sid, until)

    def is_revoked(self, sid: str) -> bool:
        if self.copy.trusted():
            return self.copy.revoked(sid)
        until = self._redis.zscore(self.key, sid)
        return until is not None and until > time.time()

    async def follow(self) -> None:
        """Keep the copy current, for as long as the process runs."""
        while True:
            try:
                await self._follow_once()
            except (redis.RedisError, OSError) as error:
                logger.warning(
                    "Lost the log-outs' subscription (%r); reading Redis until it is back",
                    error,
                )
            except Exception:
                # Whatever failed, the copy is not trusted until it is loaded again.
                logger.exception("Following the log-outs failed; reading Redis until it is back")
            finally:
                self.copy.lost()
                self._following.changed()
            await asyncio.sleep(RESUBSCRIBE_AFTER)

    async def _follow_once(self) -> None:
        following = self._following
        client = redis.asyncio.Redis.from_url(self._url, client_name=self.client_name)
        async with client, client.pubsub() as subscription:
            await subscription.subscribe(self.channel)
            while (await subscription.get_message(timeout=None))["type"] != "subscribe":
                pass
            entries = await client.zrangebyscore(self.key, time.time(), "+inf", withscores=True)
            self.copy.load({sid.decode(): until for sid, until in entries})
            following.subscription = subscription
            following.changed()
            pruned_at = time.monotonic()
            while True:
                # Whether the subscription is quiet or busy with log-outs, expired ones
                # leave the copy.
                if time.monotonic() - pruned_at > PRUNE_EVERY:
                    self.copy.expired_dropped()
                    pruned_at = time.monotonic()
                message = await subscription.get_message(timeout=PING_EVERY)
                if message is None:
                    await subscription.ping()
                    continue
                self.copy.heard()
                if message["type"] == "message":
                    until, sid = message["data"].decode().split(" ", 1)
                    self.copy.add(sid, float(until))
                elif message["type"] == "pong" and message["data"]:
                    following.caught_up(message["data"].decode())

    async def until_trusted(self, trusted: bool = True) -> None:
        """Wait until the copy is trusted (loaded), or until it is not."""
        await self._following.until(lambda: self.copy.trusted() == trusted)

    async def caught_up(self) -> None:
        """Wait until this process has heard everything published before the call."""
        await self._following.ping_answered()


class _Following:
    """What `follow` shares with those waiting on it: its state's changes, and the
    answers to pings sent to find out what it has heard."""

    def __init__(self):
        self.subscription = None
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future]] = []
        self._pings: dict[str, asyncio.Future] = {}

    def changed(self) -> None:
        for holds, reached in self._waiting:
            if not reached.done() and holds():
                reached.set_result(None)

    async def until(self, holds: Callable[[], bool]) -> None:
        if holds():
            return
        waiting = (holds, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        try:
            await waiting[1]
        finally:
            self._waiting.remove(waiting)

    async def ping_answered(self) -> None:
        # A ping's answer comes after every message published before it (a
        # subscription's messages arrive in order).
        token = uuid.uuid4().hex
        answered = self._pings[token] = asyncio.get_running_loop().create_future()
        try:
            await self.subscription.ping(token)
            await answered
        finally:
            self._pings.pop(token, None)

    def caught_up(self, token: str) -> None:
        answered = self._pings.get(token)
        if answered is not None and not answered.done():
            answered.set_result(None)
