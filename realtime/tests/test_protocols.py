"""Reading frames into commands, without sockets: the validation every frame passes."""

import json
import uuid

import pytest
from rest_framework import serializers

from realtime import protocols
from realtime.protocols import AdvanceTrip, NativeProtocol, ProtocolError, RequestTrip
from trips.serializers import TripRequestSerializer


def frame(kind: str, data: dict) -> str:
    return json.dumps({"type": kind, "data": data})


def refusal_of(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as refused:
        NativeProtocol().parse(text, user_id=1)
    return refused.value


def test_a_serializer_s_fields_are_made_once_not_for_every_frame(monkeypatch):
    made = []
    get_fields = serializers.Serializer.get_fields
    monkeypatch.setattr(
        serializers.Serializer,
        "get_fields",
        lambda self: made.append(type(self).__name__) or get_fields(self),
    )
    protocols._form.cache_clear()
    trips = [str(uuid.uuid4()) for _ in range(3)]

    for trip_id in trips:
        NativeProtocol().parse(
            frame("trip.advance", {"trip_id": trip_id, "status": "COMPLETED"}), user_id=1
        )

    assert made == ["TripStepSerializer"]


def test_an_advance_says_everything_wrong_with_it_at_once():
    refused = refusal_of(frame("trip.advance", {"trip_id": "not a trip", "status": "FLYING"}))

    assert refused.fields == {
        "trip_id": ["Must be a valid UUID."],
        "status": ['"FLYING" is not a valid choice.'],
    }


def test_a_refused_frame_leaves_nothing_behind_for_the_next():
    first, second = uuid.uuid4(), uuid.uuid4()
    protocol = NativeProtocol()

    read = protocol.parse(
        frame("trip.advance", {"trip_id": str(first), "status": "IN_PROGRESS"}), user_id=1
    )
    refused = refusal_of(frame("trip.advance", {"trip_id": str(second), "status": "FLYING"}))
    read_again = protocol.parse(
        frame("trip.advance", {"trip_id": str(second), "status": "COMPLETED"}), user_id=1
    )

    assert read == AdvanceTrip("trip.advance", first, "IN_PROGRESS")
    assert refused.fields == {"status": ['"FLYING" is not a valid choice.']}
    assert read_again == AdvanceTrip("trip.advance", second, "COMPLETED")


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"pick_up_address": "", "drop_off_address": "x" * 256},
        {"pick_up_address": "A", "drop_off_address": "B", "pick_up_lat": 91},
        {"pick_up_address": "A", "drop_off_address": "B", "drop_off_lng": 2.0},
        {"pick_up_address": "A", "drop_off_address": "B", "pick_up_lat": "north"},
    ],
)
def test_a_request_s_field_errors_are_those_its_serializer_gives(data):
    form = TripRequestSerializer(data=data)
    assert not form.is_valid()

    assert refusal_of(frame("trip.request", data)).fields == form.errors


def test_a_valid_request_reads_as_its_serializer_reads_it():
    data = {"pick_up_address": "A", "drop_off_address": "B", "pick_up_lat": 1, "pick_up_lng": 2}
    form = TripRequestSerializer(data=data)
    assert form.is_valid()

    assert NativeProtocol().parse(frame("trip.request", data), user_id=1) == RequestTrip(
        "trip.request", dict(form.validated_data)
    )
