import re
import uuid

import pytest

from trips.models import Trip

pytestmark = pytest.mark.django_db


def ids(response):
    return [trip["id"] for trip in response.json()]


class TestTripList:
    def test_needs_authentication(self, api_client):
        assert api_client.get("/api/trip/").status_code == 401

    def test_rider_sees_only_their_own_trips_newest_first(
        self, client_for, rider, make_user, make_trip
    ):
        older = make_trip(rider, status=Trip.Status.COMPLETED, driver=make_user("driver"))
        newer = make_trip(rider)
        make_trip(make_user("rider"))

        response = client_for(rider).get("/api/trip/")

        assert response.status_code == 200
        assert ids(response) == [str(newer.id), str(older.id)]

    def test_driver_sees_open_requests_and_their_own_trips(
        self, client_for, driver, make_user, make_trip
    ):
        someone, other_driver = make_user("rider"), make_user("driver")
        open_request = make_trip(someone)
        own = make_trip(make_user("rider"), status=Trip.Status.STARTED, driver=driver)
        make_trip(make_user("rider"), status=Trip.Status.STARTED, driver=other_driver)
        make_trip(make_user("rider"), status=Trip.Status.CANCELED)

        response = client_for(driver).get("/api/trip/")

        assert sorted(ids(response)) == sorted([str(open_request.id), str(own.id)])

    def test_user_without_role_sees_nothing(self, client_for, make_user, make_trip):
        make_trip(make_user("rider"))

        assert client_for(make_user("")).get("/api/trip/").json() == []

    def test_course_shape_with_nested_rider_and_driver(self, client_for, rider, driver, make_trip):
        trip = make_trip(rider, status=Trip.Status.STARTED, driver=driver)

        body = client_for(rider).get("/api/trip/").json()

        assert isinstance(body, list)
        item = body[0]
        assert item["id"] == str(trip.id)
        assert item["status"] == "STARTED"
        assert item["pick_up_address"] == trip.pick_up_address
        assert item["drop_off_address"] == trip.drop_off_address
        assert {"created", "updated"} <= set(item)
        assert item["rider"] == {
            "id": rider.id,
            "username": rider.username,
            "first_name": rider.first_name,
            "last_name": rider.last_name,
            "group": "rider",
            "photo": None,
        }
        assert item["driver"]["username"] == driver.username
        assert "password" not in str(body)

    def test_filter_by_status(self, client_for, rider, driver, make_trip):
        make_trip(rider, status=Trip.Status.COMPLETED, driver=driver)
        current = make_trip(rider)

        response = client_for(rider).get("/api/trip/?status=REQUESTED")

        assert ids(response) == [str(current.id)]

    def test_unknown_status_filter_is_a_field_error(self, client_for, rider):
        response = client_for(rider).get("/api/trip/?status=FLYING")

        assert response.status_code == 400
        assert "status" in response.json()

    def test_pages_only_when_asked(self, client_for, rider, driver, make_trip):
        for _ in range(3):
            make_trip(rider, status=Trip.Status.COMPLETED, driver=driver)

        response = client_for(rider).get("/api/trip/?limit=2")

        body = response.json()
        assert body["count"] == 3
        assert len(body["results"]) == 2
        assert body["next"]

    def test_a_page_and_the_count_are_one_statement_the_count_without_the_parties(
        self, client_for, rider, driver, make_trip, django_assert_num_queries
    ):
        for _ in range(3):
            make_trip(rider, status=Trip.Status.COMPLETED, driver=driver)
        client = client_for(rider)

        # Authenticating the user, then the page's rows with the count in each.
        with django_assert_num_queries(2) as queries:
            body = client.get("/api/trip/?limit=2").json()

        page = queries[-1]["sql"]
        count = page[: page.index("), ")]  # the first column
        assert "COUNT(" in count
        assert "JOIN" not in count
        assert body["count"] == 3
        assert [trip["driver"]["id"] for trip in body["results"]] == [driver.id, driver.id]

    def test_a_driver_s_page_of_one_status_counts_only_what_they_see_in_it(
        self, client_for, rider, driver, make_user, make_trip
    ):
        make_trip(rider)  # open for requests, which every driver sees
        mine = [make_trip(rider, status=Trip.Status.COMPLETED, driver=driver) for _ in range(3)]
        make_trip(rider, status=Trip.Status.COMPLETED, driver=make_user("driver"))

        body = client_for(driver).get("/api/trip/?status=COMPLETED&limit=2").json()

        assert body["count"] == 3
        assert [trip["id"] for trip in body["results"]] == [str(mine[2].id), str(mine[1].id)]

    def test_a_page_past_the_last_trip_is_empty_and_still_counts_them(
        self, client_for, rider, driver, make_trip
    ):
        for _ in range(3):
            make_trip(rider, status=Trip.Status.COMPLETED, driver=driver)

        body = client_for(rider).get("/api/trip/?limit=2&offset=5").json()

        assert body["count"] == 3
        assert body["results"] == []
        assert body["next"] is None
        assert body["previous"]

    def test_the_last_page_has_what_is_left_and_the_count(
        self, client_for, rider, driver, make_trip
    ):
        made = [make_trip(rider, status=Trip.Status.COMPLETED, driver=driver) for _ in range(3)]

        body = client_for(rider).get("/api/trip/?limit=2&offset=2").json()

        assert body["count"] == 3
        assert [trip["id"] for trip in body["results"]] == [str(made[0].id)]  # the oldest
        assert body["next"] is None

    def test_a_page_of_none_counts_none_in_the_page_s_statement(
        self, client_for, rider, make_user, make_trip, django_assert_num_queries
    ):
        make_trip(make_user("rider"))  # someone else's
        client = client_for(rider)

        with django_assert_num_queries(2):
            body = client.get("/api/trip/?limit=2").json()

        assert body == {"count": 0, "next": None, "previous": None, "results": []}

    def test_no_query_per_row(
        self, client_for, rider, make_user, make_trip, django_assert_num_queries
    ):
        for _ in range(5):
            make_trip(rider, status=Trip.Status.COMPLETED, driver=make_user("driver"))
        client = client_for(rider)

        # Authenticating the user, then the trips with their rider and driver joined.
        with django_assert_num_queries(2):
            response = client.get("/api/trip/")
        assert len(response.json()) == 5


class TestTripDetail:
    def test_rider_reads_their_trip(self, client_for, rider, make_trip):
        trip = make_trip(rider)

        response = client_for(rider).get(f"/api/trip/{trip.id}/")

        assert response.status_code == 200
        assert response.json()["id"] == str(trip.id)

    def test_another_riders_trip_is_404(self, client_for, rider, make_user, make_trip):
        trip = make_trip(make_user("rider"))

        assert client_for(rider).get(f"/api/trip/{trip.id}/").status_code == 404

    def test_driver_cannot_see_another_drivers_trip(self, client_for, driver, make_user, make_trip):
        trip = make_trip(make_user("rider"), status=Trip.Status.STARTED, driver=make_user("driver"))

        assert client_for(driver).get(f"/api/trip/{trip.id}/").status_code == 404

    def test_driver_sees_an_open_request(self, client_for, driver, make_user, make_trip):
        trip = make_trip(make_user("rider"))

        assert client_for(driver).get(f"/api/trip/{trip.id}/").status_code == 200

    def test_unknown_and_malformed_ids_are_404(self, client_for, rider):
        client = client_for(rider)

        assert client.get(f"/api/trip/{uuid.uuid4()}/").status_code == 404
        assert client.get("/api/trip/not-a-uuid/").status_code == 404

    def test_detail_needs_authentication(self, api_client, rider, make_trip):
        trip = make_trip(rider)

        assert api_client.get(f"/api/trip/{trip.id}/").status_code == 401


def test_openapi_schema_and_docs_are_served_offline(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/sign_up/", "/api/log_in/", "/api/trip/", "/api/trip/{id}/"} <= set(paths)
    assert docs.status_code == 200
    # The Swagger UI comes from the sidecar package: every asset from this server, no
    # CDN. (The page's random CSRF token may spell "cdn"; only addresses are checked.)
    page = docs.content.decode()
    assets = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', page)
    assert assets
    assert all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets)
    assert not re.search(r"https?://", page)
