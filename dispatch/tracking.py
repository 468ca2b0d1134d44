"""The assigned driver's positions, on their way to the trip's rider.

Each accepted position goes to the rider's sockets at once and becomes the trip's last
known position (what a reconnecting rider's snapshot shows); the trail for the trip's
history is written in batches by the driver's socket, not one insert per position.
"""

from datetime import UTC, datetime
from typing import Protocol

import orjson

from config.hot_settings import hot_settings
from dispatch.backends import ProcessWide
from dispatch.positions import AcceptedPosition
from dispatch.redis_clients import Command, CommandWriter, Outbox, PerLoop, PerLoopRedis
from realtime.delivery import deliver, to_group, user_group

# How long a trip's last known position is kept after its driver stops reporting.
LAST_POSITION_SECONDS = 6 * 60 * 60


def position_payload(*, trip_id: str, driver_id: int, position: AcceptedPosition) -> dict:
    return {
        "trip_id": trip_id,
        "driver_id": driver_id,
        "lat": position.lat,
        "lng": position.lng,
        "heading": position.heading,
        "speed": position.speed,
        "recorded_at": datetime.fromtimestamp(position.measured_at, UTC)
        .isoformat()
        .replace("+00:00", "Z"),
    }


class LastPositions(Protocol):
    async def position_keep(self, trip_id: str, payload: dict) -> None: ...

    async def positions_of(self, trip_ids: list[str]) -> dict[str, dict]: ...


class MemoryLastPositions:
    def __init__(self):
        self._positions: dict[str, dict] = {}

    async def position_keep(self, trip_id: str, payload: dict) -> None:
        self._positions[trip_id] = payload

    async def positions_of(self, trip_ids: list[str]) -> dict[str, dict]:
        return {
            trip_id: self._positions[trip_id] for trip_id in trip_ids if trip_id in self._positions
        }


class RedisLastPositions:
    def __init__(self, url: str):
        self._redis_clients = PerLoopRedis(url)
        # Every position a driver on a trip reports is kept: one round trip each would
        # queue for Redis under load, so they go in pipelines.
        self._outboxes = PerLoop(lambda: Outbox[tuple[str, bytes]](self._positions_set))
        # Only the loop's outbox writes with its writer, one batch at a time.
        self._writers = PerLoop(CommandWriter)
        # Every socket of a user on a trip reads its trips' last positions as it opens:
        # through redis-py's client, 120-170 µs of CPU a read with sockets opening 200
        # at a time (docs/benchmarks.md, finding 85). Those asked for together go in
        # one pipeline, as the positions kept do.
        self._reads = PerLoop(lambda: Outbox[list[str]](self._positions_read))
        self._readers = PerLoop(CommandWriter)

    @staticmethod
    def _key(trip_id: str) -> str:
        return f"{hot_settings.REDIS_KEY_PREFIX}:tracking:last:{trip_id}"

    async def position_keep(self, trip_id: str, payload: dict) -> None:
        await self._outboxes.get().put((trip_id, orjson.dumps(payload)))

    async def _positions_set(self, positions: list[tuple[str, bytes]]) -> None:
        commands: list[Command] = [
            (b"SET", self._key(trip_id), document, b"EX", LAST_POSITION_SECONDS)
            for trip_id, document in positions
        ]
        await self._writers.get().replies(self._redis_clients.client(), commands)

    async def positions_of(self, trip_ids: list[str]) -> dict[str, dict]:
        if not trip_ids:
            return {}
        stored = await self._reads.get().put(trip_ids)
        return {trip_id: orjson.loads(s) for trip_id, s in zip(trip_ids, stored, strict=True) if s}

    async def _positions_read(self, asked: list[list[str]]) -> list[list]:
        commands: list[Command] = [
            (b"MGET", *(self._key(trip_id) for trip_id in trip_ids)) for trip_ids in asked
        ]
        return await self._readers.get().replies(self._redis_clients.client(), commands)


last_positions = ProcessWide[LastPositions](redis=RedisLastPositions, memory=MemoryLastPositions)


async def position_share(
    *, trip_id: str, driver_id: int, rider_id: int, position: AcceptedPosition, keep: bool = True
) -> dict:
    """Send the position to the trip's rider, and only them, and keep it as the last
    (unless `keep` is false: the caller then keeps it, or a later one, itself)."""
    payload = position_payload(trip_id=trip_id, driver_id=driver_id, position=position)
    await deliver(
        [to_group(user_group(rider_id), {"type": "driver.location", "position": payload})]
    )
    if keep:
        await last_positions().position_keep(trip_id, payload)
    return payload
