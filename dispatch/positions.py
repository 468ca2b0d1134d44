"""Validating the positions drivers report.

A driver's client reports, about once a second, a JSON object with:

- `lat`, `lng` (required): degrees. Latitudes are limited to ±85.05112878, the range
  Redis GEO can hold (`dispatch.geo.MAX_LATITUDE`): a report outside it is refused rather
  than clamped, because clamping would move the driver by up to 550 km without a word.
- `heading`: degrees clockwise from north, 0 to 360.
- `speed`: metres per second, 0 or more.
- `accuracy`: metres, more than 0.
- `timestamp`: when the fix was taken, either unix seconds (a number, not milliseconds)
  or an ISO 8601 date and time with a UTC offset (`2026-11-24T06:22:08.5Z`). Without
  one, the fix counts as taken when the server received it.

Numbers must be JSON numbers (true and false are not), finite. `null` counts as absent
for the optional members, because browsers' Geolocation API reports an unknown heading
or speed as null. Other members are ignored.

Each driver's positions are bounded to one every POSITION_MIN_INTERVAL_SECONDS on
average, with up to POSITION_BURST at once, rather than held to a minimum gap between
two: network and server delays bunch up positions a client sent evenly, and the client
should not be refused for the server's own stalls. The bound goes by the server's clock,
because a client's timestamps are its own to choose.
"""

import math
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from config.exceptions import DomainError
from config.hot_settings import hot_settings
from dispatch.geo import MAX_LATITUDE, distance_m


class PositionRefusal(StrEnum):
    """The stable codes of a refused position report."""

    INVALID = "invalid"
    OUT_OF_RANGE = "out_of_range"
    INACCURATE = "inaccurate"
    IN_FUTURE = "in_future"
    STALE = "stale"
    TOO_FREQUENT = "too_frequent"
    TOO_FAST = "too_fast"


class PositionRejected(DomainError):
    def __init__(self, code: PositionRefusal, message: str, *, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


class AcceptedPosition(NamedTuple):
    """A position as accepted, never changed after.

    A named tuple: one is made for every position a driver reports, and a frozen
    dataclass, which sets each field through `object.__setattr__`, took 1.2 µs to make
    against 0.4 (docs/benchmarks.md, finding 97)."""

    lat: float
    lng: float
    heading: float | None
    speed: float | None
    accuracy: float | None
    # When the fix was taken by the client's clock (unix seconds); `received_at` when the
    # client sent no timestamp.
    measured_at: float
    # When the server accepted it (unix seconds).
    received_at: float
    # The driver's rate bound: positions take slots POSITION_MIN_INTERVAL_SECONDS apart
    # by server time, and this is the next free one (unix seconds). It is a token bucket
    # kept as one number: a slot `n` intervals ahead of now is the bucket `n` short.
    next_slot_at: float


_NAMES = {
    "lat": "latitude",
    "lng": "longitude",
    "heading": "heading",
    "speed": "speed",
    "accuracy": "accuracy",
}
_LATITUDES = f"between -{MAX_LATITUDE}° and {MAX_LATITUDE}°"


def position_validate(
    *, report: object, previous: AcceptedPosition | None, now: float
) -> AcceptedPosition:
    """The position a driver reported, checked; or PositionRejected saying why not.

    `previous` is the driver's last accepted position, `now` the server's time (unix
    seconds). The checks, in order:

    - `invalid`, `out_of_range`: the members, as described in the module's docstring;
    - `inaccurate`: accuracy worse than POSITION_MAX_ACCURACY_M. Such fixes are ignored:
      refused, so the caller records nothing;
    - `in_future`: a timestamp more than POSITION_MAX_FUTURE_SECONDS ahead of `now`;
    - `stale`: a timestamp more than POSITION_MAX_AGE_SECONDS behind `now`;
    - `too_frequent`: more than POSITION_BURST - 1 intervals ahead of the driver's
      schedule. Each accepted position takes the driver's next slot, or `now` if that
      has passed, and slots are POSITION_MIN_INTERVAL_SECONDS of server time apart: a
      driver may send POSITION_BURST at once and then one every interval, a position
      that comes early is made up for by one that comes late, and slots left unused
      while quiet are not saved up;
    - `stale`: a timestamp not after the previous accepted position's;
    - `too_fast`: the great-circle distance from the previous accepted position, over
      the time between the two timestamps, above POSITION_MAX_SPEED_KMH.

    A refused report does not replace `previous`, so it takes no slot, and after one
    wrongly accepted jump the driver is held back until the implied speed from it falls
    under the limit; callers should pass no `previous` once a driver has been offline.
    """
    # A dict, as every JSON object is read, without the abstract class's check.
    if type(report) is not dict and not isinstance(report, Mapping):
        raise PositionRejected(
            PositionRefusal.INVALID, "A position report must be an object with lat and lng."
        )
    lat = _required(report, "lat")
    lng = _required(report, "lng")
    heading = _optional(report, "heading")
    speed = _optional(report, "speed")
    accuracy = _optional(report, "accuracy")
    measured_at = _timestamp(report, now)

    # Each check raises only when it fails: a report that passes, as nearly all do,
    # builds no message.
    if not -MAX_LATITUDE <= lat <= MAX_LATITUDE:
        raise _out_of_range("lat", lat, _LATITUDES)
    if not -180 <= lng <= 180:
        raise _out_of_range("lng", lng, "between -180° and 180°")
    if heading is not None and not 0 <= heading <= 360:
        raise _out_of_range("heading", heading, "between 0° and 360°")
    if speed is not None and speed < 0:
        raise _out_of_range("speed", speed, "0 m/s or more")
    if accuracy is not None and accuracy <= 0:
        raise _out_of_range("accuracy", accuracy, "more than 0 m")

    if accuracy is not None and accuracy > hot_settings.POSITION_MAX_ACCURACY_M:
        raise PositionRejected(
            PositionRefusal.INACCURATE,
            f"The fix is accurate to {accuracy:g} m; fixes less accurate than "
            f"{hot_settings.POSITION_MAX_ACCURACY_M:g} m are ignored.",
            field="accuracy",
        )
    if measured_at > now + hot_settings.POSITION_MAX_FUTURE_SECONDS:
        raise PositionRejected(
            PositionRefusal.IN_FUTURE,
            f"The timestamp is {measured_at - now:.1f} s ahead of the server's clock, more "
            f"than the {hot_settings.POSITION_MAX_FUTURE_SECONDS:g} s allowed (timestamps are in "
            "seconds, not milliseconds).",
            field="timestamp",
        )
    if measured_at < now - hot_settings.POSITION_MAX_AGE_SECONDS:
        raise PositionRejected(
            PositionRefusal.STALE,
            f"The position is {now - measured_at:.1f} s old; positions older than "
            f"{hot_settings.POSITION_MAX_AGE_SECONDS:g} s are refused.",
            field="timestamp",
        )
    next_slot_at = _slot_take(previous, now)
    if previous is not None:
        _previous_check(lat, lng, measured_at, previous)
    # In the fields' order: keywords cost a named tuple a tenth of its making.
    return AcceptedPosition(lat, lng, heading, speed, accuracy, measured_at, now, next_slot_at)


def _slot_take(previous: AcceptedPosition | None, now: float) -> float:
    """The driver's next free slot once this position has taken one; or too_frequent."""
    interval = hot_settings.POSITION_MIN_INTERVAL_SECONDS
    slot = now if previous is None else max(previous.next_slot_at, now)
    if slot - now > (hot_settings.POSITION_BURST - 1) * interval:
        raise PositionRejected(
            PositionRefusal.TOO_FREQUENT,
            f"A driver's positions are accepted one every {interval:g} s on average, at "
            f"most {hot_settings.POSITION_BURST} at once.",
        )
    return slot + interval


def _previous_check(lat: float, lng: float, measured_at: float, previous: AcceptedPosition) -> None:
    # Also keeps the implied speed below from dividing by zero.
    if measured_at <= previous.measured_at:
        raise PositionRejected(
            PositionRefusal.STALE,
            "The position is not newer than the last accepted one.",
            field="timestamp",
        )
    metres = distance_m(previous.lat, previous.lng, lat, lng)
    speed_kmh = metres / (measured_at - previous.measured_at) * 3.6
    if speed_kmh > hot_settings.POSITION_MAX_SPEED_KMH:
        raise PositionRejected(
            PositionRefusal.TOO_FAST,
            f"Reaching this position from the last accepted one takes {speed_kmh:.0f} km/h, "
            f"over the {hot_settings.POSITION_MAX_SPEED_KMH:g} km/h limit.",
        )


def _finite_number(value: object) -> float | None:
    """`value` as a float if it is a finite JSON number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _required(report: Mapping, field: str) -> float:
    if report.get(field) is None:
        raise PositionRejected(
            PositionRefusal.INVALID, f"The {_NAMES[field]} is missing.", field=field
        )
    return _optional(report, field)


def _optional(report: Mapping, field: str) -> float | None:
    value = report.get(field)
    if type(value) is float and math.isfinite(value):
        return value  # most reports' numbers, read from JSON with a fraction
    if value is None:
        return None
    number = _finite_number(value)
    if number is None:
        raise PositionRejected(
            PositionRefusal.INVALID,
            f"The {_NAMES[field]} must be a finite number.",
            field=field,
        )
    return number


def _timestamp(report: Mapping, now: float) -> float:
    value = report.get("timestamp")
    if value is None:
        return now
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.timestamp()
    else:
        number = _finite_number(value)
        if number is not None:
            return number
    raise PositionRejected(
        PositionRefusal.INVALID,
        "The timestamp must be unix seconds or an ISO 8601 date and time with a UTC offset.",
        field="timestamp",
    )


def _out_of_range(field: str, value: float, allowed: str) -> PositionRejected:
    return PositionRejected(
        PositionRefusal.OUT_OF_RANGE,
        f"The {_NAMES[field]} must be {allowed}, not {value:g}.",
        field=field,
    )
