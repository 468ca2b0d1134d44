"""The events a trip change produces, built in one place for every transport.

A trip event travels through the channel layer as one message carrying the trip as
REST renders it, serialised once however many sockets receive it; each socket's
protocol turns it into what its client reads. `origin` names the socket (and its
request) that caused the change, so that socket's copy can answer that request.
"""

from dataclasses import dataclass
from enum import StrEnum

from realtime.delivery import Delivery, to_channel, to_group, user_group
from trips.models import Trip
from trips.serializers import trip_representation


class TripEvent(StrEnum):
    REQUESTED = "trip.requested"  # to the rider: the request is open
    OFFERED = "trip.offered"  # to a driver: this request is offered to you
    ACCEPTED = "trip.accepted"  # to both parties: a driver is on the way
    UPDATED = "trip.updated"  # to both parties: picked up, completed, or driver dropped out
    TAKEN = "trip.taken"  # to other offered drivers: someone else accepted
    CANCELED = "trip.canceled"  # to the parties and offered drivers
    NO_DRIVER_FOUND = "trip.no_driver_found"  # to the rider: the search ended empty


@dataclass(frozen=True)
class Origin:
    channel: str | None = None
    request_id: str | None = None


def trip_payload(trip: Trip) -> dict:
    return trip_representation(trip)


def trip_message(kind: TripEvent, payload: dict, origin: Origin | None = None) -> dict:
    return {
        "type": "trip.event",
        "kind": str(kind),
        "trip": payload,
        "origin": origin.channel if origin else None,
        "request_id": origin.request_id if origin else None,
    }


def to_parties(trip: Trip, message: dict, *, also: tuple[int, ...] = ()) -> list[Delivery]:
    """The message for the rider and the driver of `trip` (and any former party)."""
    user_ids = {trip.rider_id, *also}
    if trip.driver_id:
        user_ids.add(trip.driver_id)
    return [to_group(user_group(user_id), message) for user_id in sorted(user_ids)]


def to_origin_only(message: dict, origin: Origin | None) -> list[Delivery]:
    return [to_channel(origin.channel, message)] if origin and origin.channel else []
