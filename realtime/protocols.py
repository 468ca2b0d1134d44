"""The two dialects of /taxi/: what each client may say, and how each hears events.

A protocol turns a client's text frame into a command (or a `ProtocolError`) and turns
events and refusals into the messages its clients read. It holds no rules of the
domain: the consumer hands commands to the trip services, which decide.
"""

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from rest_framework import serializers

from config.exceptions import DomainError
from trips.events import TripEvent
from trips.models import Trip
from trips.serializers import TripAdvanceSerializer, TripRequestSerializer

NATIVE_SUBPROTOCOL = "taxi.v2"


class ProtocolError(DomainError):
    """A message that cannot be read as any request the server knows."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.fields = fields
        # The request as far as it could be read, so the refusal can name it.
        self.request: Command | None = None


# --- Commands: what a client asks for, whichever dialect it speaks --------------------


@dataclass(frozen=True)
class Command:
    request_type: str
    request_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class RequestTrip(Command):
    fields: dict


@dataclass(frozen=True)
class AcceptTrip(Command):
    trip_id: uuid.UUID


@dataclass(frozen=True)
class AdvanceTrip(Command):
    trip_id: uuid.UUID
    status: str


@dataclass(frozen=True)
class CancelTrip(Command):
    trip_id: uuid.UUID


@dataclass(frozen=True)
class SetOnline(Command):
    online: bool


@dataclass(frozen=True)
class ReportPosition(Command):
    # Checked by the position rules, which know the driver's previous position.
    report: Any


@dataclass(frozen=True)
class Echo(Command):
    data: Any


@dataclass(frozen=True)
class CourseClaims:
    """What a course client's `update.trip` says about the trip's parties; the server
    checks it against the trip instead of applying it."""

    rider: Any = None
    driver: Any = None


@dataclass(frozen=True)
class CourseUpdateTrip(Command):
    trip_id: uuid.UUID
    status: str
    claims: CourseClaims


# --- Reading frames ---------------------------------------------------------------------


def _decode(text: str) -> dict:
    # orjson, a third of the standard library's time for a frame (finding 77). Stricter
    # than `json` where JSON itself is: it refuses NaN and the infinities (and numbers
    # too large for a double) and escaped lone surrogates, which no field could take;
    # it reads integers beyond 64 bits as floats, which no field takes either.
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ProtocolError("The message is not valid JSON.") from error
    if not isinstance(message, dict):
        raise ProtocolError("The message must be a JSON object.")
    if not isinstance(message.get("type"), str):
        raise ProtocolError("The message needs a string `type`.", fields={"type": ["Required."]})
    return message


def _validated(serializer_class, data) -> dict:
    if not isinstance(data, dict):
        raise ProtocolError("`data` must be an object.", fields={"data": ["Must be an object."]})
    try:
        return dict(_form(serializer_class).run_validation(data))
    except serializers.ValidationError as error:
        raise ProtocolError("Some fields are invalid.", fields=error.detail) from None


@functools.cache
def _form(serializer_class) -> serializers.Serializer:
    """The one instance of `serializer_class` that validates every frame it reads.

    Each new serializer deep-copies its class's fields, and that was 15 % of a worker's
    samples in trip updates (docs/benchmarks.md, finding 44). Validation keeps
    nothing on the instance (`is_valid` is `run_validation` with the result stored), so
    one instance made once serves every frame, whichever thread reads it.
    """
    return serializer_class()


class TripIdSerializer(serializers.Serializer):
    trip_id = serializers.UUIDField()


class TripStepSerializer(TripIdSerializer, TripAdvanceSerializer):
    """An advance's trip and the status it moves to, read in one pass (each read by a
    serializer of its own cost an advance twice DRF's work)."""


class CourseTripUpdateSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=[
            Trip.Status.STARTED,
            Trip.Status.IN_PROGRESS,
            Trip.Status.COMPLETED,
            Trip.Status.CANCELED,
        ]
    )


def user_id_of(value: Any) -> str | None:
    """The user a course client names: an id, or a nested user object as it received it."""
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None or value == "" else str(value)


# --- The course protocol ----------------------------------------------------------------


class CourseProtocol:
    subprotocol = None
    # Course clients have no "go online" step: a driver's open socket is availability.
    drivers_online_on_connect = True

    def parse(self, text: str, *, user_id: int) -> Command:
        message = _decode(text)
        kind, data = message["type"], message.get("data")
        if kind == "echo.message":
            return Echo(kind, data)
        if kind == "create.trip":
            fields = _validated(TripRequestSerializer, data)
            fields.pop("request_id", None)  # the course has none
            if user_id_of(data.get("rider")) not in (None, str(user_id)):
                raise ProtocolError(
                    "The rider of a new trip is always you.",
                    code="field_not_allowed",
                    fields={"rider": ["You cannot request a trip for someone else."]},
                )
            if data.get("status") not in (None, "", Trip.Status.REQUESTED):
                raise ProtocolError(
                    "A new trip is always REQUESTED.",
                    code="field_not_allowed",
                    fields={"status": ["A new trip is always REQUESTED."]},
                )
            if user_id_of(data.get("driver")) is not None:
                raise ProtocolError(
                    "A new trip has no driver until one accepts it.",
                    code="field_not_allowed",
                    fields={"driver": ["Drivers accept trips themselves."]},
                )
            return RequestTrip(kind, fields)
        if kind == "update.trip":
            fields = _validated(CourseTripUpdateSerializer, data)
            claims = CourseClaims(rider=data.get("rider"), driver=data.get("driver"))
            return CourseUpdateTrip(kind, fields["id"], fields["status"], claims)
        raise ProtocolError(f"Unknown message type {kind!r}.", code="unknown_type")

    def event(self, kind: str, trip: dict, request_id: str | None) -> dict | None:
        # Every trip event reads the same to a course client: the trip as it is now.
        return {"type": "echo.message", "data": trip}

    def echo(self, command: Echo) -> dict:
        return {"type": "echo.message", "data": command.data}

    def driver_status(self, online: bool, request_id: str | None) -> dict | None:
        return None

    def driver_location(self, position: dict) -> dict | None:
        return None  # the course's clients have no use for positions

    def snapshot(
        self, *, user: dict, trips: list[dict], online: bool, positions: dict
    ) -> dict | None:
        return None

    def error(self, error: DomainError, request: Command | None) -> dict:
        body = error.as_dict()
        trip = getattr(error, "trip", None)
        if trip is not None:
            # A refused step on a trip the user may see: its true state, and why.
            return {"type": "echo.message", "data": error.context()["trip"], "error": body}
        if getattr(error, "fields", None):
            body["fields"] = error.fields
        return {"type": "error", "error": body}


# --- The native protocol ----------------------------------------------------------------


class NativeProtocol:
    subprotocol = NATIVE_SUBPROTOCOL
    drivers_online_on_connect = False

    def parse(self, text: str, *, user_id: int) -> Command:
        message = _decode(text)
        kind, data = message["type"], message.get("data", {})
        request_id = message.get("request_id")
        if request_id is not None and not (
            isinstance(request_id, str) and 0 < len(request_id) <= 64
        ):
            error = ProtocolError(
                "`request_id` must be a string of 1 to 64 characters.",
                fields={"request_id": ["A string of 1 to 64 characters."]},
            )
            error.request = Command(kind)
            raise error
        try:
            return self._command(kind, data, request_id)
        except ProtocolError as error:
            error.request = Command(kind, request_id=request_id)
            raise

    def _command(self, kind: str, data: Any, request_id: str | None) -> Command:
        if kind == "ping":
            return Echo(kind, data, request_id=request_id)
        if kind == "trip.request":
            fields = _validated(TripRequestSerializer, data)
            fields.pop("request_id", None)  # it belongs in the envelope
            return RequestTrip(kind, fields, request_id=request_id)
        if kind == "trip.accept":
            trip_id = _validated(TripIdSerializer, data)["trip_id"]
            return AcceptTrip(kind, trip_id, request_id=request_id)
        if kind == "trip.advance":
            fields = _validated(TripStepSerializer, data)
            return AdvanceTrip(kind, fields["trip_id"], fields["status"], request_id=request_id)
        if kind == "trip.cancel":
            trip_id = _validated(TripIdSerializer, data)["trip_id"]
            return CancelTrip(kind, trip_id, request_id=request_id)
        if kind in ("driver.online", "driver.offline"):
            return SetOnline(kind, kind == "driver.online", request_id=request_id)
        if kind == "driver.location":
            return ReportPosition(kind, data, request_id=request_id)
        raise ProtocolError(f"Unknown message type {kind!r}.", code="unknown_type")

    @staticmethod
    def _message(kind: str, data: dict, request_id: str | None) -> dict:
        message = {"type": kind, "data": data}
        if request_id is not None:
            message["request_id"] = request_id
        return message

    def event(self, kind: str, trip: dict, request_id: str | None) -> dict | None:
        if kind == TripEvent.TAKEN:
            return self._message(kind, {"trip_id": trip["id"]}, request_id)
        return self._message(kind, {"trip": trip}, request_id)

    def echo(self, command: Echo) -> dict:
        return self._message("pong", command.data, command.request_id)

    def driver_status(self, online: bool, request_id: str | None) -> dict | None:
        return self._message("driver.status", {"online": online}, request_id)

    def driver_location(self, position: dict) -> dict | None:
        return self._message("driver.location", position, None)

    def snapshot(
        self, *, user: dict, trips: list[dict], online: bool, positions: dict
    ) -> dict | None:
        data = {"user": user, "trips": trips, "online": online, "positions": positions}
        return self._message("snapshot", data, None)

    def error(self, error: DomainError, request: Command | None) -> dict:
        body = {**error.as_dict(), **error.context()}
        if request is not None:
            body["request_type"] = request.request_type
        if getattr(error, "fields", None):
            body["fields"] = error.fields
        message = {"type": "error", "error": body}
        if request is not None and request.request_id is not None:
            message["request_id"] = request.request_id
        return message
