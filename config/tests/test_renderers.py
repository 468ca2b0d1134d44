"""The API's JSON renderer writes what DRF's writes, through orjson where it can."""

import decimal
import math
import uuid
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.utils.translation import gettext_lazy
from rest_framework import renderers
from rest_framework.exceptions import ErrorDetail

from config import renderers as ours


def rendered(data, media_type="application/json", context=None):
    return (
        ours.JSONRenderer().render(data, media_type, context),
        renderers.JSONRenderer().render(data, media_type, context),
    )


def through_orjson(monkeypatch) -> list:
    """The data DRF's renderer is asked to write instead of orjson."""
    fell_back = []
    drf_render = renderers.JSONRenderer.render

    def render(self, data, *args, **kwargs):
        if isinstance(self, ours.JSONRenderer):
            fell_back.append(data)
        return drf_render(self, data, *args, **kwargs)

    monkeypatch.setattr(renderers.JSONRenderer, "render", render)
    return fell_back


A_TRIP = {
    "id": str(uuid.uuid4()),
    "created": "2026-12-03T09:24:43.123456Z",
    "pick_up_address": "Rue de l'Église 4, Zürich ✓ 😀",
    "drop_off_address": 'tab\there, "quoted", back\\slash, line\nend, \x01 and /',
    "pick_up_lat": 51.5074,
    "pick_up_lng": -0.1278,
    "drop_off_lat": 0.1,
    "drop_off_lng": -180.0,
    "status": "COMPLETED",
    "rider": {"id": 7, "username": "ann", "group": "rider", "photo": None},
    "driver": None,
    "distance_m": 12345678.901,
    "canceled": False,
}


def test_what_the_api_sends_is_written_by_orjson_as_drf_writes_it(monkeypatch):
    fell_back = through_orjson(monkeypatch)
    page = {"count": 2, "next": None, "previous": "http://x/?a=1&b=2", "results": [A_TRIP] * 2}
    errors = {"status": [ErrorDetail("Not a valid choice.", code="invalid_choice")]}

    for data in (page, [A_TRIP], errors, {"big": 2**63 - 1, "tuple": (1, 2)}, "a", 1, []):
        mine, drf = rendered(data)
        assert mine == drf

    assert fell_back == []


def test_the_characters_javascript_forbids_in_strings_are_escaped_as_drf_does():
    mine, drf = rendered({"note": "a\u2028b\u2029c"})

    assert mine == drf == b'{"note":"a\\u2028b\\u2029c"}'


@pytest.mark.parametrize(
    ("data", "whole"),
    [
        ({"huge": 2**64}, True),
        ({1: "a key that is not a string"}, True),
        # These orjson hands to DRF's encoder, value by value.
        ({"amount": decimal.Decimal("12.50")}, False),
        ({"message": gettext_lazy("This field is required.")}, False),
    ],
)
def test_what_orjson_writes_otherwise_or_not_at_all_is_drf_s_to_write(monkeypatch, data, whole):
    fell_back = through_orjson(monkeypatch)

    mine, drf = rendered(data)

    assert mine == drf
    assert fell_back == ([data] if whole else [])


TIMES = {
    "utc": datetime(2026, 12, 3, 9, 24, 43, 123456, tzinfo=UTC),
    "utc, whole seconds": datetime(2026, 12, 3, 9, 24, 43, tzinfo=UTC),
    "utc by name": datetime(2026, 12, 3, 9, 24, 43, 5, tzinfo=ZoneInfo("UTC")),
    "paris": datetime(2026, 12, 3, 10, 24, 43, 120000, tzinfo=ZoneInfo("Europe/Paris")),
    "naive": datetime(2026, 12, 3, 9, 24, 43, 123456),
    "time of day": time(9, 24, 43, 123456),
    "day": date(2026, 12, 3),
}
WRITTEN = (
    b'{"utc":"2026-12-03T09:24:43.123456Z","utc, whole seconds":"2026-12-03T09:24:43Z",'
    b'"utc by name":"2026-12-03T09:24:43.000005Z","paris":"2026-12-03T10:24:43.120000+01:00",'
    b'"naive":"2026-12-03T09:24:43.123456","time of day":"09:24:43.123456","day":"2026-12-03"}'
)


def test_times_are_written_as_drf_writes_them():
    mine, drf = rendered(TIMES)

    assert mine == drf == WRITTEN


def test_times_in_what_drf_s_renderer_writes_are_written_the_same_way(monkeypatch):
    fell_back = through_orjson(monkeypatch)
    data = {**TIMES, "huge": 2**64}

    written = ours.JSONRenderer().render(data)

    assert fell_back == [data]
    assert written == WRITTEN[:-1] + b',"huge":18446744073709551616}'


def test_indented_json_is_drf_s():
    data = {"a": [1, 2]}

    mine, drf = rendered(data, "application/json; indent=2")

    assert mine == drf == b'{\n  "a": [\n    1,\n    2\n  ]\n}'


@pytest.mark.parametrize(("setting", "value"), [("ensure_ascii", True), ("compact", False)])
def test_ascii_only_or_spaced_json_is_drf_s(setting, value):
    mine, drf = ours.JSONRenderer(), renderers.JSONRenderer()
    setattr(mine, setting, value)
    setattr(drf, setting, value)

    assert mine.render(A_TRIP) == drf.render(A_TRIP)


def test_nothing_is_written_for_no_data():
    assert rendered(None) == (b"", b"")


def test_the_numbers_written_otherwise_than_drf_writes_them():
    assert ours.JSONRenderer().render({"lat": 1e-05}) == b'{"lat":0.00001}'
    assert ours.JSONRenderer().render({"lat": math.nan}) == b'{"lat":null}'
    with pytest.raises(ValueError):
        renderers.JSONRenderer().render({"lat": math.nan})


def test_the_api_renders_with_it(client_for, rider, make_trip):
    make_trip(rider, pick_up_lat=1e-05, pick_up_lng=0.5)

    body = client_for(rider).get("/api/trip/").content

    assert b'"pick_up_lat":0.00001,' in body
