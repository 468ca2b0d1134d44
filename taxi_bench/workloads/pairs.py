"""A rider and a driver of taxi, each on a native socket, and the trips between them.

Runs reuse their users, and a run that was interrupted may leave trips open; a pair
first ends whatever its snapshots say is still active, so every run starts clean.
"""

import asyncio
from dataclasses import dataclass, field

from taxi_bench.sockets import Peer, open_taxi_socket
from taxi_bench.target import Target
from taxi_bench.users import BenchUser

ADVANCE_ORDER = ("IN_PROGRESS", "COMPLETED")


class PairFailed(Exception):
    """A setup step was refused; the pair sits the run out."""


# What can go wrong with a pair's socket or its steps (a closed socket is an OSError):
# it then sits the run out.
PAIR_TROUBLE = (PairFailed, TimeoutError, OSError)


async def ask(peer: Peer, kind: str, data: dict, expect: str) -> dict:
    """Send a request; its reply must be `expect`, or the step failed."""
    reply = await peer.ask({"type": kind, "data": data})
    if reply.get("type") != expect:
        error = reply.get("error", {})
        raise PairFailed(f"{kind} answered {error.get('code', reply.get('type'))}")
    return reply


async def drive_to_the_end(driver: Peer, trip: dict) -> None:
    """The driver completes a STARTED or IN_PROGRESS trip of theirs."""
    steps = ADVANCE_ORDER if trip["status"] == "STARTED" else ("COMPLETED",)
    for step in steps:
        await ask(driver, "trip.advance", {"trip_id": trip["id"], "status": step}, "trip.updated")


@dataclass
class Pair:
    number: int
    rider: Peer
    driver: Peer
    rider_user: BenchUser
    driver_user: BenchUser
    trip_id: str | None = None
    leftovers: list[dict] = field(default_factory=list)

    async def ask(self, peer: Peer, kind: str, data: dict, expect: str) -> dict:
        return await ask(peer, kind, data, expect)

    def adopt_own_trip(self) -> bool:
        """Take over a trip this rider and this driver are already on (an earlier run
        left it), instead of ending it and starting another."""
        for trip in self.leftovers:
            driver = (trip.get("driver") or {}).get("id")
            ours = driver == self.driver_user.id and trip["rider"]["id"] == self.rider_user.id
            if ours and trip["status"] in ("STARTED", "IN_PROGRESS"):
                self.trip_id = trip["id"]
                self.leftovers.remove(trip)
                return True
        return False

    async def end_leftover_trips(self) -> None:
        for trip in self.leftovers:
            status = trip["status"]
            driver = (trip.get("driver") or {}).get("id")
            if driver == self.driver_user.id and status in ("STARTED", "IN_PROGRESS"):
                await drive_to_the_end(self.driver, trip)
            elif trip["rider"]["id"] == self.rider_user.id and status in ("REQUESTED", "STARTED"):
                await self.ask(self.rider, "trip.cancel", {"trip_id": trip["id"]}, "trip.canceled")
            else:
                raise PairFailed(f"a {status} trip left by an earlier run cannot be ended")
        self.leftovers = []

    async def start_trip(self, *, address: str = "bench pick-up") -> str:
        """The rider requests a trip and the driver accepts it: the trip is STARTED."""
        reply = await self.ask(
            self.rider,
            "trip.request",
            {"pick_up_address": address, "drop_off_address": "bench drop-off"},
            "trip.requested",
        )
        self.trip_id = reply["data"]["trip"]["id"]
        await self.ask(self.driver, "trip.accept", {"trip_id": self.trip_id}, "trip.accepted")
        return self.trip_id

    async def close(self) -> None:
        await asyncio.gather(self.rider.close(), self.driver.close(), return_exceptions=True)


async def open_pair(target: Target, number: int, rider: BenchUser, driver: BenchUser) -> Pair:
    rider_peer, rider_snapshot = await open_taxi_socket(target, rider.access)
    try:
        driver_peer, driver_snapshot = await open_taxi_socket(target, driver.access)
    except BaseException:
        await rider_peer.close()
        raise
    leftovers = {trip["id"]: trip for trip in driver_snapshot["trips"] + rider_snapshot["trips"]}
    return Pair(number, rider_peer, driver_peer, rider, driver, leftovers=list(leftovers.values()))
