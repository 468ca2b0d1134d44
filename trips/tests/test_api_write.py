"""The trip rules through REST: who may request, accept, advance and cancel, and what a
refusal leaves behind (nothing)."""

import uuid

import pytest
from django.utils import timezone

from trips.models import Trip
from trips.tests.conftest import trip_rows

pytestmark = pytest.mark.django_db

TRIPS = "/api/trip/"
REQUEST = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}


def action(trip, name: str) -> str:
    return f"{TRIPS}{trip.id}/{name}/"


def detail(trip_id) -> str:
    return f"{TRIPS}{trip_id}/"


def refused(response, status: int, code: str) -> dict:
    """The body of a refusal, after checking its status and stable code."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    return body


@pytest.fixture
def started_trip(rider, driver, make_trip):
    return make_trip(rider, status=Trip.Status.STARTED, driver=driver, accepted_at=timezone.now())


@pytest.fixture
def in_progress_trip(rider, driver, make_trip):
    now = timezone.now()
    return make_trip(
        rider, status=Trip.Status.IN_PROGRESS, driver=driver, accepted_at=now, picked_up_at=now
    )


class TestRequest:
    def test_rider_requests_a_trip_with_coordinates(self, client_for, rider):
        client = client_for(rider)

        response = client.post(
            TRIPS,
            {
                **REQUEST,
                "pick_up_lat": 52.37,
                "pick_up_lng": 4.89,
                "drop_off_lat": -33.9,
                "drop_off_lng": 151.2,
            },
            format="json",
        )

        assert response.status_code == 201, response.content
        body = response.json()
        trip = Trip.objects.get()
        assert body["id"] == str(trip.id)
        assert trip.rider == rider
        assert trip.driver is None
        assert trip.status == Trip.Status.REQUESTED
        assert (trip.pick_up_address, trip.drop_off_address) == (
            "1 Main Street",
            "99 Harbour Road",
        )
        assert (trip.pick_up_lat, trip.pick_up_lng) == (52.37, 4.89)
        assert (trip.drop_off_lat, trip.drop_off_lng) == (-33.9, 151.2)
        assert trip.requested_at is not None
        assert body["rider"]["id"] == rider.id
        assert body["status"] == "REQUESTED"
        assert body == client.get(detail(trip.id)).json()

    def test_coordinates_are_optional(self, client_for, rider):
        response = client_for(rider).post(TRIPS, REQUEST, format="json")

        assert response.status_code == 201
        trip = Trip.objects.get()
        assert [trip.pick_up_lat, trip.pick_up_lng, trip.drop_off_lat, trip.drop_off_lng] == [
            None
        ] * 4

    def test_fields_only_the_server_sets_are_ignored(self, client_for, rider, make_user):
        someone_else, driver = make_user("rider"), make_user("driver")

        response = client_for(rider).post(
            TRIPS,
            {
                **REQUEST,
                "rider": someone_else.id,
                "driver": driver.id,
                "status": "COMPLETED",
                "cancel_reason": "rider",
                "distance_m": 12.5,
                "id": str(uuid.uuid4()),
            },
            format="json",
        )

        assert response.status_code == 201, response.content
        trip = Trip.objects.get()
        assert str(trip.id) == response.json()["id"]
        assert trip.rider == rider
        assert trip.driver is None
        assert trip.status == Trip.Status.REQUESTED
        assert (trip.cancel_reason, trip.distance_m) == ("", None)

    def test_a_rider_whose_last_trip_ended_may_request_again(
        self, client_for, rider, driver, make_trip
    ):
        make_trip(rider, status=Trip.Status.COMPLETED, driver=driver)
        make_trip(rider, status=Trip.Status.CANCELED)

        assert client_for(rider).post(TRIPS, REQUEST, format="json").status_code == 201
        assert Trip.objects.filter(rider=rider, status=Trip.Status.REQUESTED).count() == 1

    def test_a_driver_cannot_request(self, client_for, driver):
        response = client_for(driver).post(TRIPS, REQUEST, format="json")

        refused(response, 403, "wrong_role")
        assert not Trip.objects.exists()

    def test_a_user_without_a_role_cannot_request(self, client_for, make_user):
        response = client_for(make_user("")).post(TRIPS, REQUEST, format="json")

        refused(response, 403, "wrong_role")
        assert not Trip.objects.exists()

    @pytest.mark.parametrize("status", ["REQUESTED", "STARTED", "IN_PROGRESS"])
    def test_a_rider_with_an_active_trip_cannot_request_another(
        self, client_for, rider, driver, make_trip, status
    ):
        active = make_trip(rider, status=status, driver=None if status == "REQUESTED" else driver)
        before = trip_rows()

        response = client_for(rider).post(
            TRIPS, {**REQUEST, "request_id": "another"}, format="json"
        )

        body = refused(response, 409, "rider_has_active_trip")
        assert body["trip"]["id"] == str(active.id)
        assert trip_rows() == before

    @pytest.mark.parametrize(
        ("data", "fields"),
        [
            ({}, {"pick_up_address", "drop_off_address"}),
            ({"drop_off_address": "99 Harbour Road"}, {"pick_up_address"}),
            ({**REQUEST, "pick_up_address": ""}, {"pick_up_address"}),
            ({**REQUEST, "drop_off_address": "x" * 256}, {"drop_off_address"}),
            ({**REQUEST, "pick_up_lat": 52.37}, {"pick_up_lng"}),
            ({**REQUEST, "drop_off_lng": 4.89}, {"drop_off_lat"}),
            ({**REQUEST, "pick_up_lat": 90.5, "pick_up_lng": 4.89}, {"pick_up_lat"}),
            ({**REQUEST, "pick_up_lat": 52.37, "pick_up_lng": -180.1}, {"pick_up_lng"}),
            ({**REQUEST, "drop_off_lat": -91, "drop_off_lng": 0}, {"drop_off_lat"}),
            ({**REQUEST, "pick_up_lat": "NaN", "pick_up_lng": 0}, {"pick_up_lat"}),
            ({**REQUEST, "pick_up_lat": "north", "pick_up_lng": 0}, {"pick_up_lat"}),
            ({**REQUEST, "request_id": "r" * 65}, {"request_id"}),
        ],
    )
    def test_invalid_input_is_a_field_error_and_makes_no_trip(
        self, client_for, rider, data, fields
    ):
        response = client_for(rider).post(TRIPS, data, format="json")

        assert response.status_code == 400, response.content
        assert set(response.json()) == fields
        assert not Trip.objects.exists()

    def test_needs_authentication(self, api_client):
        assert api_client.post(TRIPS, REQUEST, format="json").status_code == 401
        assert not Trip.objects.exists()


class TestRequestId:
    def test_a_retried_request_returns_the_first_trip(self, client_for, rider):
        client = client_for(rider)

        first = client.post(TRIPS, {**REQUEST, "request_id": "r-1"}, format="json")
        again = client.post(TRIPS, {**REQUEST, "request_id": "r-1"}, format="json")

        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == first.json()
        assert Trip.objects.count() == 1

    def test_a_retry_changes_nothing_even_if_its_fields_differ(self, client_for, rider):
        client = client_for(rider)
        first = client.post(TRIPS, {**REQUEST, "request_id": "r-1"}, format="json")
        before = trip_rows()

        again = client.post(
            TRIPS,
            {"pick_up_address": "Elsewhere", "drop_off_address": "Nowhere", "request_id": "r-1"},
            format="json",
        )

        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["pick_up_address"] == "1 Main Street"
        assert trip_rows() == before

    def test_another_rider_may_use_the_same_request_id(self, client_for, rider, make_user):
        other = make_user("rider")

        mine = client_for(rider).post(TRIPS, {**REQUEST, "request_id": "r-1"}, format="json")
        theirs = client_for(other).post(TRIPS, {**REQUEST, "request_id": "r-1"}, format="json")

        assert (mine.status_code, theirs.status_code) == (201, 201)
        assert mine.json()["id"] != theirs.json()["id"]
        assert theirs.json()["rider"]["id"] == other.id
        assert Trip.objects.count() == 2

    def test_a_new_request_id_is_a_new_request(self, client_for, rider):
        client = client_for(rider)
        first = client.post(TRIPS, {**REQUEST, "request_id": "r-1"}, format="json")
        Trip.objects.filter(id=first.json()["id"]).update(status=Trip.Status.CANCELED)

        second = client.post(TRIPS, {**REQUEST, "request_id": "r-2"}, format="json")

        assert second.status_code == 201
        assert second.json()["id"] != first.json()["id"]


class TestAccept:
    def test_a_driver_accepts_a_requested_trip(self, client_for, rider, driver, make_trip):
        trip = make_trip(rider)
        client = client_for(driver)

        response = client.post(action(trip, "accept"))

        assert response.status_code == 200, response.content
        trip.refresh_from_db()
        assert trip.status == Trip.Status.STARTED
        assert trip.driver == driver
        assert trip.accepted_at is not None
        body = response.json()
        assert body["status"] == "STARTED"
        assert body["driver"]["id"] == driver.id
        assert body == client.get(detail(trip.id)).json()

    def test_a_rider_cannot_accept(self, client_for, rider, make_trip):
        trip = make_trip(rider)
        before = trip_rows()

        refused(client_for(rider).post(action(trip, "accept")), 403, "wrong_role")
        assert trip_rows() == before

    def test_a_driver_on_a_trip_cannot_accept_another(
        self, client_for, driver, started_trip, make_user, make_trip
    ):
        other = make_trip(make_user("rider"))
        before = trip_rows()

        body = refused(client_for(driver).post(action(other, "accept")), 409, "driver_busy")
        assert body["trip"]["id"] == str(other.id)
        assert trip_rows() == before

    def test_a_busy_driver_is_not_shown_a_trip_they_cannot_see(
        self, client_for, driver, started_trip, make_user, make_trip
    ):
        someone_elses = make_trip(make_user("rider"), status="STARTED", driver=make_user("driver"))
        before = trip_rows()

        response = client_for(driver).post(action(someone_elses, "accept"))

        body = refused(response, 409, "driver_busy")
        assert "trip" not in body
        assert someone_elses.rider.username not in response.content.decode()
        assert trip_rows() == before

    def test_a_trip_already_taken_is_not_available(
        self, client_for, started_trip, driver, make_user
    ):
        latecomer = make_user("driver")
        before = trip_rows()

        response = client_for(latecomer).post(action(started_trip, "accept"))

        body = refused(response, 409, "trip_not_available")
        assert body["__all__"] == ["Another driver has already accepted this trip."]
        assert body["trip"]["status"] == "STARTED"
        assert body["trip"]["driver"]["id"] == driver.id
        assert trip_rows() == before

    @pytest.mark.parametrize("had_a_driver", [False, True])
    def test_a_canceled_trip_is_not_available(
        self, client_for, rider, driver, make_user, make_trip, had_a_driver
    ):
        trip = make_trip(
            rider, status=Trip.Status.CANCELED, driver=make_user("driver") if had_a_driver else None
        )
        before = trip_rows()

        body = refused(client_for(driver).post(action(trip, "accept")), 409, "trip_not_available")
        assert body["trip"]["status"] == "CANCELED"
        assert body["__all__"] == ["This trip is no longer requested."]
        assert trip_rows() == before

    @pytest.mark.parametrize("status", [Trip.Status.IN_PROGRESS, Trip.Status.COMPLETED])
    def test_a_trip_long_gone_on_is_refused_without_showing_it(
        self, client_for, rider, driver, make_user, make_trip, status
    ):
        trip = make_trip(rider, status=status, driver=make_user("driver"))
        before = trip_rows()

        body = refused(client_for(driver).post(action(trip, "accept")), 409, "trip_not_available")
        assert "trip" not in body
        assert trip_rows() == before

    def test_the_assigned_driver_accepting_again_changes_nothing(
        self, client_for, driver, started_trip
    ):
        before = trip_rows()

        refused(client_for(driver).post(action(started_trip, "accept")), 409, "driver_busy")
        assert trip_rows() == before

    def test_an_unknown_trip_is_404(self, client_for, driver):
        response = client_for(driver).post(f"{TRIPS}{uuid.uuid4()}/accept/")

        refused(response, 404, "trip_not_found")

    def test_needs_authentication(self, api_client, rider, make_trip):
        trip = make_trip(rider)
        before = trip_rows()

        assert api_client.post(action(trip, "accept")).status_code == 401
        assert trip_rows() == before

    def test_an_unapproved_driver_cannot_accept_where_approval_is_required(
        self, settings, client_for, driver, rider, make_trip
    ):
        settings.DRIVER_APPROVAL_REQUIRED = True
        trip = make_trip(rider)
        before = trip_rows()

        body = refused(client_for(driver).post(action(trip, "accept")), 403, "driver_not_approved")
        assert body["trip"]["id"] == str(trip.id)
        assert trip_rows() == before

    def test_an_approved_driver_accepts_where_approval_is_required(
        self, settings, client_for, make_user, rider, make_trip
    ):
        settings.DRIVER_APPROVAL_REQUIRED = True
        driver = make_user("driver", driver_approved_at=timezone.now())
        trip = make_trip(rider)

        response = client_for(driver).post(action(trip, "accept"))

        assert response.status_code == 200, response.content
        trip.refresh_from_db()
        assert (trip.status, trip.driver) == (Trip.Status.STARTED, driver)


class TestAdvance:
    def test_the_driver_picks_up_then_drops_off(self, client_for, driver, started_trip):
        client = client_for(driver)

        picked_up = client.post(
            action(started_trip, "advance"), {"status": "IN_PROGRESS"}, format="json"
        )

        assert picked_up.status_code == 200, picked_up.content
        started_trip.refresh_from_db()
        assert started_trip.status == Trip.Status.IN_PROGRESS
        assert started_trip.picked_up_at is not None
        assert started_trip.completed_at is None
        assert picked_up.json() == client.get(detail(started_trip.id)).json()

        completed = client.post(
            action(started_trip, "advance"), {"status": "COMPLETED"}, format="json"
        )

        assert completed.status_code == 200, completed.content
        started_trip.refresh_from_db()
        assert started_trip.status == Trip.Status.COMPLETED
        assert started_trip.completed_at is not None
        assert started_trip.driver == driver
        assert completed.json()["status"] == "COMPLETED"

    def test_a_completed_trip_frees_the_driver(
        self, client_for, driver, in_progress_trip, make_user, make_trip
    ):
        client = client_for(driver)
        client.post(action(in_progress_trip, "advance"), {"status": "COMPLETED"}, format="json")
        next_trip = make_trip(make_user("rider"))

        assert client.post(action(next_trip, "accept")).status_code == 200

    @pytest.mark.parametrize(
        ("fixture", "status"),
        [
            ("started_trip", "COMPLETED"),
            ("in_progress_trip", "IN_PROGRESS"),
        ],
    )
    def test_steps_out_of_order_are_refused(self, request, client_for, driver, fixture, status):
        trip = request.getfixturevalue(fixture)
        before = trip_rows()

        response = client_for(driver).post(
            action(trip, "advance"), {"status": status}, format="json"
        )

        body = refused(response, 409, "status_out_of_order")
        assert body["trip"]["status"] == trip.status
        assert trip_rows() == before

    def test_a_finished_trip_cannot_advance(self, client_for, driver, rider, make_trip):
        trip = make_trip(rider, status=Trip.Status.COMPLETED, driver=driver)
        before = trip_rows()

        response = client_for(driver).post(
            action(trip, "advance"), {"status": "COMPLETED"}, format="json"
        )

        refused(response, 409, "status_out_of_order")
        assert trip_rows() == before

    @pytest.mark.parametrize("status", ["STARTED", "CANCELED", "REQUESTED", "FLYING", ""])
    def test_only_the_driver_steps_can_be_asked_for(self, client_for, driver, started_trip, status):
        before = trip_rows()

        response = client_for(driver).post(
            action(started_trip, "advance"), {"status": status}, format="json"
        )

        assert response.status_code == 400
        assert "status" in response.json()
        assert trip_rows() == before

    def test_another_driver_cannot_see_the_trip(self, client_for, started_trip, make_user):
        before = trip_rows()

        response = client_for(make_user("driver")).post(
            action(started_trip, "advance"), {"status": "IN_PROGRESS"}, format="json"
        )

        body = refused(response, 404, "trip_not_found")
        assert "trip" not in body
        assert trip_rows() == before

    def test_a_driver_cannot_advance_a_request_they_have_not_accepted(
        self, client_for, driver, rider, make_trip
    ):
        trip = make_trip(rider)
        before = trip_rows()

        response = client_for(driver).post(
            action(trip, "advance"), {"status": "IN_PROGRESS"}, format="json"
        )

        refused(response, 403, "not_your_trip")
        assert trip_rows() == before

    def test_the_rider_cannot_advance(self, client_for, rider, started_trip):
        before = trip_rows()

        response = client_for(rider).post(
            action(started_trip, "advance"), {"status": "IN_PROGRESS"}, format="json"
        )

        body = refused(response, 403, "wrong_role")
        assert body["trip"]["status"] == "STARTED"
        assert trip_rows() == before

    def test_a_rider_advancing_a_trip_they_cannot_see_is_not_shown_it(
        self, client_for, make_user, started_trip
    ):
        before = trip_rows()

        response = client_for(make_user("rider")).post(
            action(started_trip, "advance"), {"status": "IN_PROGRESS"}, format="json"
        )

        body = refused(response, 403, "wrong_role")
        assert "trip" not in body
        assert trip_rows() == before

    def test_an_unknown_trip_is_404(self, client_for, driver):
        response = client_for(driver).post(
            f"{TRIPS}{uuid.uuid4()}/advance/", {"status": "IN_PROGRESS"}, format="json"
        )

        refused(response, 404, "trip_not_found")

    def test_needs_authentication(self, api_client, started_trip):
        before = trip_rows()

        response = api_client.post(
            action(started_trip, "advance"), {"status": "IN_PROGRESS"}, format="json"
        )

        assert response.status_code == 401
        assert trip_rows() == before


class TestCancel:
    def test_the_rider_cancels_a_request(self, client_for, rider, make_trip):
        trip = make_trip(rider)

        response = client_for(rider).post(action(trip, "cancel"))

        assert response.status_code == 200, response.content
        trip.refresh_from_db()
        assert trip.status == Trip.Status.CANCELED
        assert trip.cancel_reason == "rider"
        assert trip.canceled_at is not None
        assert response.json()["status"] == "CANCELED"
        assert response.json()["cancel_reason"] == "rider"

    def test_the_rider_cancels_after_a_driver_accepted_which_frees_the_driver(
        self, client_for, rider, driver, started_trip, make_user, make_trip
    ):
        response = client_for(rider).post(action(started_trip, "cancel"))

        assert response.status_code == 200, response.content
        started_trip.refresh_from_db()
        assert started_trip.status == Trip.Status.CANCELED
        assert started_trip.cancel_reason == "rider"
        next_trip = make_trip(make_user("rider"))
        assert client_for(driver).post(action(next_trip, "accept")).status_code == 200
        assert client_for(rider).post(TRIPS, REQUEST, format="json").status_code == 201

    def test_the_driver_drops_out_and_another_driver_accepts(
        self, client_for, rider, driver, started_trip, make_user
    ):
        response = client_for(driver).post(action(started_trip, "cancel"))

        assert response.status_code == 200, response.content
        started_trip.refresh_from_db()
        assert started_trip.status == Trip.Status.REQUESTED
        assert started_trip.driver is None
        assert started_trip.accepted_at is None
        assert started_trip.canceled_at is None
        assert response.json()["status"] == "REQUESTED"
        assert response.json()["driver"] is None
        # The former driver no longer sees it as theirs, and is free again.
        assert client_for(driver).get(detail(started_trip.id)).json()["driver"] is None

        another = make_user("driver")
        accepted = client_for(another).post(action(started_trip, "accept"))

        assert accepted.status_code == 200, accepted.content
        started_trip.refresh_from_db()
        assert (started_trip.status, started_trip.driver) == (Trip.Status.STARTED, another)

    @pytest.mark.parametrize("who", ["rider", "driver"])
    def test_an_in_progress_trip_cannot_be_canceled(
        self, request, client_for, in_progress_trip, who
    ):
        before = trip_rows()

        response = client_for(request.getfixturevalue(who)).post(action(in_progress_trip, "cancel"))

        body = refused(response, 409, "status_out_of_order")
        assert body["trip"]["status"] == "IN_PROGRESS"
        assert trip_rows() == before

    @pytest.mark.parametrize("status", ["COMPLETED", "CANCELED"])
    def test_a_finished_trip_cannot_be_canceled(self, client_for, rider, driver, make_trip, status):
        trip = make_trip(rider, status=status, driver=driver)
        before = trip_rows()

        refused(client_for(rider).post(action(trip, "cancel")), 409, "status_out_of_order")
        assert trip_rows() == before

    def test_a_driver_cannot_drop_out_of_a_request(self, client_for, driver, rider, make_trip):
        trip = make_trip(rider)
        before = trip_rows()

        refused(client_for(driver).post(action(trip, "cancel")), 403, "not_your_trip")
        assert trip_rows() == before

    def test_another_rider_cannot_see_the_trip(self, client_for, make_user, rider, make_trip):
        trip = make_trip(rider)
        before = trip_rows()

        body = refused(
            client_for(make_user("rider")).post(action(trip, "cancel")), 404, "trip_not_found"
        )
        assert "trip" not in body
        assert trip_rows() == before

    def test_another_driver_cannot_see_an_accepted_trip(self, client_for, make_user, started_trip):
        before = trip_rows()

        response = client_for(make_user("driver")).post(action(started_trip, "cancel"))

        refused(response, 404, "trip_not_found")
        assert trip_rows() == before

    def test_an_unknown_trip_is_404(self, client_for, rider):
        refused(client_for(rider).post(f"{TRIPS}{uuid.uuid4()}/cancel/"), 404, "trip_not_found")

    def test_needs_authentication(self, api_client, rider, make_trip):
        trip = make_trip(rider)
        before = trip_rows()

        assert api_client.post(action(trip, "cancel")).status_code == 401
        assert trip_rows() == before


@pytest.mark.parametrize(
    ("name", "data"),
    [("accept", None), ("advance", {"status": "IN_PROGRESS"}), ("cancel", None)],
)
@pytest.mark.parametrize("trip_id", ["-" * 36, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa-", "0" * 36])
def test_an_id_that_is_no_uuid_is_404_not_a_server_error(
    client_for, make_user, name, data, trip_id
):
    role = "rider" if name == "cancel" else "driver"

    response = client_for(make_user(role)).post(f"{TRIPS}{trip_id}/{name}/", data, format="json")

    refused(response, 404, "trip_not_found")
