"""Validation of reported driver positions: each refusal next to a report that passes."""

import math
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from dispatch.positions import AcceptedPosition, PositionRejected, position_validate

NOW = 1_800_000_000.0
# Porto, Avenida dos Aliados.
LAT, LNG = 41.1496, -8.6109
# Metres in one degree of latitude, on the sphere Redis and taxi measure with.
METRES_PER_DEGREE = 6_372_797.560856 * math.pi / 180


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.POSITION_MAX_SPEED_KMH = 250
    settings.POSITION_MAX_AGE_SECONDS = 30
    settings.POSITION_MAX_FUTURE_SECONDS = 5
    settings.POSITION_MAX_ACCURACY_M = 100
    settings.POSITION_MIN_INTERVAL_SECONDS = 0.5
    settings.POSITION_BURST = 3


def report(**changes) -> dict:
    """A full report that passes; a change set to ... removes that member."""
    full = {
        "lat": LAT,
        "lng": LNG,
        "heading": 90.0,
        "speed": 12.5,
        "accuracy": 8.0,
        "timestamp": NOW - 1,
    }
    full.update(changes)
    return {name: value for name, value in full.items() if value is not ...}


def previous(*, lat=LAT, lng=LNG, measured_at=NOW - 11, received_at=NOW - 10) -> AcceptedPosition:
    # Its next slot long past: the driver may send a whole burst.
    return AcceptedPosition(
        lat, lng, None, None, None, measured_at, received_at, next_slot_at=received_at + 0.5
    )


def north_of(metres: float) -> float:
    return LAT + metres / METRES_PER_DEGREE


def refusal(report, previous=None, now=NOW) -> PositionRejected:
    with pytest.raises(PositionRejected) as caught:
        position_validate(report=report, previous=previous, now=now)
    return caught.value


def accepted(report, previous=None, now=NOW) -> AcceptedPosition:
    return position_validate(report=report, previous=previous, now=now)


def test_a_full_report_is_accepted_as_sent():
    position = accepted(report())

    assert position == AcceptedPosition(
        lat=LAT,
        lng=LNG,
        heading=90.0,
        speed=12.5,
        accuracy=8.0,
        measured_at=NOW - 1,
        received_at=NOW,
        next_slot_at=NOW + 0.5,
    )


def test_a_report_that_is_a_mapping_but_not_a_dict_is_read_as_one():
    assert accepted(MappingProxyType(report())) == accepted(report())


def test_the_optional_members_may_be_missing_or_null():
    bare = accepted({"lat": LAT, "lng": LNG})
    nulls = accepted(report(heading=None, speed=None, accuracy=None, timestamp=None))

    for position in (bare, nulls):
        assert (position.heading, position.speed, position.accuracy) == (None, None, None)
        # Without a timestamp the fix counts as taken when the server received it.
        assert position.measured_at == position.received_at == NOW


def test_integers_are_numbers_and_other_members_are_ignored():
    position = accepted(report(lat=41, lng=-8, heading=0, speed=0, colour="yellow"))

    assert (position.lat, position.lng, position.heading, position.speed) == (41.0, -8.0, 0, 0)
    assert isinstance(position.lat, float)


def test_an_iso_8601_timestamp_with_an_offset_is_accepted():
    taken = datetime.fromtimestamp(NOW - 2.5, tz=UTC)
    forms = [
        taken.isoformat().replace("+00:00", "Z"),
        taken.isoformat(),
        taken.astimezone(timezone(timedelta(hours=-5))).isoformat(),
    ]

    for form in forms:
        assert accepted(report(timestamp=form)).measured_at == NOW - 2.5, form


class TestInvalid:
    @pytest.mark.parametrize("field", ["lat", "lng"])
    def test_a_missing_or_null_coordinate(self, field):
        for changed in (report(**{field: ...}), report(**{field: None})):
            error = refusal(changed)
            assert (error.code, error.field) == ("invalid", field)

    @pytest.mark.parametrize("field", ["lat", "lng", "heading", "speed", "accuracy"])
    @pytest.mark.parametrize(
        "value",
        ["41.1", True, False, math.nan, math.inf, -math.inf, 10**400, [41.1], {"v": 1}],
        ids=["text", "true", "false", "nan", "inf", "-inf", "huge-int", "list", "object"],
    )
    def test_a_member_that_is_not_a_finite_number(self, field, value):
        error = refusal(report(**{field: value}))

        assert (error.code, error.field) == ("invalid", field)
        assert error.message.endswith("must be a finite number.")

    @pytest.mark.parametrize(
        "value",
        ["yesterday", "2026-11-24T06:22:08", "2026-11-24", True, math.nan, [NOW]],
        ids=["words", "no-offset", "date-only", "bool", "nan", "list"],
    )
    def test_a_timestamp_that_is_neither_unix_seconds_nor_iso_8601_with_offset(self, value):
        error = refusal(report(timestamp=value))

        assert (error.code, error.field) == ("invalid", "timestamp")

    @pytest.mark.parametrize("sent", [None, [LAT, LNG], "41.1,-8.6", 41.1])
    def test_a_report_that_is_not_an_object(self, sent):
        error = refusal(sent)

        assert (error.code, error.field) == ("invalid", None)


class TestOutOfRange:
    @pytest.mark.parametrize(
        ("field", "inside", "outside"),
        [
            ("lat", 85.05112878, 85.05112879),
            ("lat", -85.05112878, -85.05112879),
            ("lng", 180, 180.000001),
            ("lng", -180, -180.000001),
            ("heading", 0, -0.1),
            ("heading", 360, 360.1),
            ("speed", 0, -0.01),
            ("accuracy", 0.01, 0),
        ],
    )
    def test_bounds(self, field, inside, outside):
        assert getattr(accepted(report(**{field: inside})), field) == inside

        error = refusal(report(**{field: outside}))

        assert (error.code, error.field) == ("out_of_range", field)

    def test_the_message_names_the_limits_and_the_value(self):
        error = refusal(report(lat=86))

        assert (
            error.message == "The latitude must be between -85.05112878° and 85.05112878°, not 86."
        )


class TestInaccurate:
    def test_a_fix_less_accurate_than_the_limit_is_ignored(self):
        assert accepted(report(accuracy=100)).accuracy == 100

        error = refusal(report(accuracy=100.5))

        assert (error.code, error.field) == ("inaccurate", "accuracy")


class TestTimestamps:
    def test_up_to_the_allowed_skew_ahead_of_the_server(self):
        assert accepted(report(timestamp=NOW + 5)).measured_at == NOW + 5

        error = refusal(report(timestamp=NOW + 5.25))

        assert (error.code, error.field) == ("in_future", "timestamp")

    def test_milliseconds_are_far_in_the_future(self):
        error = refusal(report(timestamp=NOW * 1000))

        assert error.code == "in_future"
        assert "seconds, not milliseconds" in error.message

    def test_up_to_the_maximum_age(self):
        assert accepted(report(timestamp=NOW - 30)).measured_at == NOW - 30

        error = refusal(report(timestamp=NOW - 30.25))

        assert (error.code, error.field) == ("stale", "timestamp")

    def test_an_iso_8601_timestamp_is_held_to_the_same_limits(self):
        too_old = datetime.fromtimestamp(NOW - 31, tz=UTC).isoformat()

        assert refusal(report(timestamp=too_old)).code == "stale"

    def test_a_position_must_be_newer_than_the_previous_one(self):
        before = previous(measured_at=NOW - 5)
        assert accepted(report(timestamp=NOW - 4.75), before).measured_at == NOW - 4.75

        for not_newer in (NOW - 5, NOW - 6):
            error = refusal(report(timestamp=not_newer), before)
            assert (error.code, error.field) == ("stale", "timestamp")


def answers(arrivals) -> list[str]:
    """The server's answer to each of a driver's reports, given as (report, server time
    of its arrival), with the last accepted position passed on as the callers do."""
    last, said = None, []
    for sent, now in arrivals:
        try:
            last = accepted(sent, last, now)
        except PositionRejected as error:
            said.append(error.code)
        else:
            said.append("accepted")
    return said


class TestTooFrequent:
    @pytest.mark.parametrize("delays", [(0, 0.01), (0.01, 0), (0, 0.4), (0.3, 0, 0.1)], ids=str)
    def test_a_client_sending_every_interval_is_accepted_through_jitter(self, delays):
        # Sent every 0.5 s for 30 s; the delays on the way take turns, so the server
        # sees gaps such as 0.49 s then 0.51 s, or 0.1 s then 0.9 s.
        sent_at = [NOW - 30 + 0.5 * number for number in range(61)]
        arrivals = [
            (report(timestamp=sent), sent + delays[number % len(delays)])
            for number, sent in enumerate(sent_at)
        ]

        assert answers(arrivals) == ["accepted"] * 61

    @pytest.mark.parametrize("burst", [1, 3, 5])
    def test_after_a_stall_a_burst_up_to_the_burst_size_is_accepted(self, settings, burst):
        settings.POSITION_BURST = burst
        # Sent every 0.5 s. The server stalls after the first and gets the next ten all
        # at once when it is back, 5 s later; those after them arrive on time again.
        back = NOW - 5
        first = [(report(timestamp=NOW - 10), NOW - 10)]
        queued = [(report(timestamp=NOW - 9.5 + 0.5 * number), back) for number in range(10)]
        on_time = [
            (report(timestamp=at), at) for at in (back + 0.5, back + 1, back + 1.5, back + 2)
        ]

        said = answers(first + queued + on_time)

        assert said[0] == "accepted"
        assert said[1:11] == ["accepted"] * burst + ["too_frequent"] * (10 - burst)
        assert said[11:] == ["accepted"] * 4

    def test_a_rate_above_the_bound_is_held_to_it(self):
        # Sent and received every 0.25 s, twice the sustained rate: the burst lets the
        # first five through, and then every other one is refused.
        times = [NOW - 20 + 0.25 * number for number in range(40)]

        said = answers([(report(timestamp=at), at) for at in times])

        assert said[:5] == ["accepted"] * 5
        assert said[5:] == ["too_frequent", "accepted"] * 17 + ["too_frequent"]

    def test_by_server_time_not_the_clients_timestamps(self):
        # The client's timestamps are a second apart, but the server got them at once.
        sent_at = [NOW - 4, NOW - 3, NOW - 2, NOW - 1]

        said = answers([(report(timestamp=sent), NOW) for sent in sent_at])

        assert said == ["accepted"] * 3 + ["too_frequent"]

    def test_a_report_refused_for_another_reason_takes_no_slot(self):
        # Refused after the rate is checked: too fast, and not newer than the first.
        refused = [report(lat=north_of(10_000), timestamp=NOW - 1), report(timestamp=NOW - 3)]
        good = [report(timestamp=NOW - 1 + 0.25 * number) for number in range(4)]
        arrivals = [(report(timestamp=NOW - 2), NOW - 2)]
        arrivals += [(sent, NOW) for sent in [*refused, *good]]

        said = answers(arrivals)

        assert said == ["accepted", "too_fast", "stale", *["accepted"] * 3, "too_frequent"]

    def test_the_refusal_says_the_bound(self):
        last = None
        for sent in (NOW - 0.75, NOW - 0.5, NOW - 0.25):
            last = accepted(report(timestamp=sent), last)

        error = refusal(report(timestamp=NOW), last)

        assert (error.code, error.field) == ("too_frequent", None)
        assert error.message == (
            "A driver's positions are accepted one every 0.5 s on average, at most 3 at once."
        )


class TestTooFast:
    # 250 km/h is 69.44 m/s.
    @pytest.mark.parametrize(("seconds", "metres"), [(1, 69), (10, 694)])
    def test_under_the_speed_limit(self, seconds, metres):
        before = previous(measured_at=NOW - 1 - seconds)

        position = accepted(report(lat=north_of(metres)), before)

        assert position.lat == north_of(metres)

    @pytest.mark.parametrize(("seconds", "metres"), [(1, 70), (10, 695), (0.5, 40)])
    def test_over_the_speed_limit(self, seconds, metres):
        before = previous(measured_at=NOW - 1 - seconds)

        error = refusal(report(lat=north_of(metres)), before)

        assert (error.code, error.field) == ("too_fast", None)

    def test_speed_is_measured_between_the_client_timestamps(self):
        # Received 10 s apart, but taken 1 s apart: 500 m in 1 s is 1800 km/h; the same
        # 500 m taken 9 s apart is 200 km/h.
        before = previous(measured_at=NOW - 9, received_at=NOW - 10)

        assert refusal(report(lat=north_of(500), timestamp=NOW - 8), before).code == "too_fast"
        assert accepted(report(lat=north_of(500), timestamp=NOW), before).measured_at == NOW

    def test_across_the_antimeridian_the_short_way_round(self):
        # 0.002° of longitude at the equator is 222 m: 80 km/h over 10 s.
        before = previous(lat=0.0, lng=179.999, measured_at=NOW - 11)

        assert accepted(report(lat=0.0, lng=-179.999), before).lng == -179.999

    def test_without_timestamps_the_server_times_count(self):
        before = previous(measured_at=NOW - 1, received_at=NOW - 1)

        assert accepted(report(lat=north_of(60), timestamp=None), before).measured_at == NOW
        assert refusal(report(lat=north_of(80), timestamp=None), before).code == "too_fast"


def test_the_previous_position_is_only_a_bound_not_a_requirement():
    # The first report of a session has nothing to be compared with.
    far_away = report(lat=-33.8688, lng=151.2093)

    assert accepted(far_away, previous=None).lat == -33.8688
    assert refusal(far_away, previous=previous()).code == "too_fast"
