"""The trip reads on hot paths, whose SQL is composed once (`config.composed_reads`):
they must give what the ORM gives, on every backend the tests run on."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from trips.models import Trip
from trips.selectors import (
    ClaimedUser,
    UserNotConfirmed,
    VisibleTrips,
    _user_with_active_trips,
    trip_with_parties,
    trips_active_for,
    trips_requested_by,
    trips_visible_to,
    user_with_active_trips,
)

pytestmark = pytest.mark.django_db


def values_of(instance) -> list:
    return [getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields]


def test_a_trip_read_is_the_orm_s_with_its_parties_loaded(
    rider, driver, make_trip, django_assert_num_queries
):
    trip = make_trip(
        rider,
        status="IN_PROGRESS",
        driver=driver,
        pick_up_lat=51.5,
        pick_up_lng=-0.12,
        accepted_at=timezone.now(),
        picked_up_at=timezone.now(),
        request_id="r-1",
    )
    expected = Trip.objects.select_related("rider", "driver").get(id=trip.id)

    with django_assert_num_queries(1):
        found = trip_with_parties(trip.id)
        rider_values, driver_values = values_of(found.rider), values_of(found.driver)

    assert values_of(found) == values_of(expected)
    assert rider_values == values_of(expected.rider)
    assert driver_values == values_of(expected.driver)
    assert found.pk == trip.pk and not found._state.adding


def test_a_trip_without_a_driver_has_none_and_needs_no_query_to_say_so(
    rider, make_trip, django_assert_num_queries
):
    trip = make_trip(rider)

    with django_assert_num_queries(1):
        found = trip_with_parties(str(trip.id))  # as a client names it
        assert found.driver is None
        assert found.rider.id == rider.id


def test_no_such_trip_reads_as_none(rider, make_trip):
    make_trip(rider)

    assert trip_with_parties("6f1c3d55-8d4e-4a8e-9c1e-2b7a3f0e9d11") is None


def test_the_active_trips_of_a_user_as_rider_or_driver(make_user, make_trip):
    rider, other_rider, driver = make_user("rider"), make_user("rider"), make_user("driver")
    driven = make_trip(rider, status="STARTED", driver=driver)
    make_trip(rider, status="COMPLETED", driver=driver)
    make_trip(other_rider, status="CANCELED")
    requested = make_trip(other_rider)

    assert {trip.id for trip in trips_active_for(rider)} == {driven.id}
    assert {trip.id for trip in trips_active_for(driver)} == {driven.id}
    assert {trip.id for trip in trips_active_for(other_rider)} == {requested.id}


def test_a_user_and_their_active_trips_in_one_statement(
    make_user, make_trip, django_assert_num_queries
):
    rider, other_rider, driver = make_user("rider"), make_user("rider"), make_user("driver")
    driven = make_trip(
        rider, status="IN_PROGRESS", driver=driver, pick_up_lat=51.5, pick_up_lng=-0.12
    )
    for _ in range(3):  # a history, which neither side reads
        make_trip(rider, status="COMPLETED", driver=driver)
    make_trip(other_rider, status="CANCELED")
    requested = make_trip(other_rider)
    expected = Trip.objects.select_related("rider", "driver").get(id=driven.id)

    for user, trips in ((rider, [driven]), (driver, [driven]), (other_rider, [requested])):
        with django_assert_num_queries(1):
            found_user, found_trips = user_with_active_trips(user.id)
            parties = [(trip.rider.id, trip.driver and trip.driver.id) for trip in found_trips]

        assert values_of(found_user) == values_of(user)
        assert [trip.id for trip in found_trips] == [trip.id for trip in trips]
        assert {trip.id for trip in trips_active_for(user)} == {trip.id for trip in trips}
        assert parties == [(trip.rider_id, trip.driver_id) for trip in trips]
    _, (found,) = user_with_active_trips(driver.id)
    assert values_of(found) == values_of(expected)
    assert values_of(found.rider) == values_of(expected.rider)
    assert values_of(found.driver) == values_of(expected.driver)


def test_a_user_with_no_active_trips_is_read_all_the_same(
    make_user, make_trip, django_assert_num_queries
):
    driver, rider = make_user("driver"), make_user("rider")
    make_trip(rider, status="COMPLETED", driver=driver)
    driver.is_active = False
    driver.save()

    with django_assert_num_queries(1):
        found, trips = user_with_active_trips(driver.id)

    assert values_of(found) == values_of(driver)  # inactive: the caller decides
    assert trips == []
    assert user_with_active_trips(driver.id + 1000) == (None, [])


@pytest.mark.postgres
def test_a_drivers_active_trips_are_found_without_their_history(make_user, make_trip):
    # The partial unique indexes hold a user's active trips, one a side; the driver's
    # (driver, created) index holds every trip they ever drove.
    rider, driver = make_user("rider"), make_user("driver")
    make_trip(rider, status="COMPLETED", driver=driver)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, _, _ = _user_with_active_trips._composed_for_backend()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", [driver.id])
        plan = json.dumps(cursor.fetchone()[0])

    trip_indexes = {
        name for name in re.findall(r'"Index Name": "([^"]+)"', plan) if name.startswith("trip")
    }
    assert trip_indexes == {"trip_one_active_per_rider", "trip_one_active_per_driver"}


def test_a_request_id_finds_the_trip_it_made_even_once_over(rider, driver, make_trip):
    done = make_trip(rider, status="COMPLETED", driver=driver, request_id="r-1")
    active = make_trip(rider, request_id="r-2")

    assert {trip.id for trip in trips_requested_by(rider, "r-1")} == {done.id, active.id}
    assert {trip.id for trip in trips_requested_by(rider, "r-2")} == {active.id}


def test_a_blank_request_id_matches_no_earlier_request(rider, driver, make_trip):
    # Trips made without a request id have a blank one; a blank asks for none of them.
    make_trip(rider, status="COMPLETED", driver=driver)
    make_trip(rider, status="CANCELED")

    assert trips_requested_by(rider, "") == []


def test_the_trip_list_is_the_orm_s_for_every_role_and_status_filter(make_user, make_trip):
    rider, other_rider = make_user("rider"), make_user("rider")
    driver, other_driver = make_user("driver"), make_user("driver")
    trips = [
        make_trip(rider),
        make_trip(rider, status="COMPLETED", driver=driver),
        make_trip(other_rider, status="STARTED", driver=other_driver),
        make_trip(make_user("rider")),
        make_trip(rider, status="CANCELED"),
        make_trip(make_user("rider"), status="IN_PROGRESS", driver=driver),
    ]
    # Made in one order, created (as the list sorts them) in another, none at once.
    now = timezone.now()
    for minutes_ago, trip in zip([5, 1, 4, 2, 6, 3], trips, strict=True):
        Trip.objects.filter(id=trip.id).update(created=now - timedelta(minutes=minutes_ago))

    for user in (rider, other_rider, driver, other_driver, make_user("")):
        for status in (None, "REQUESTED", "IN_PROGRESS"):
            expected = trips_visible_to(user).order_by("-created")
            if status:
                expected = expected.filter(status=status)
            expected_ids = [trip.id for trip in expected]

            listed = VisibleTrips(user, status)

            assert [trip.id for trip in listed] == expected_ids, (user.role, status)
            assert listed.count() == len(expected_ids)
            page, count = listed.page_counted(1, 2)
            assert ([trip.id for trip in page], count) == (expected_ids[1:3], len(expected_ids))
            assert listed.page_counted(len(expected_ids), 1) == ([], len(expected_ids))


class TestTheListOfAUserNotReadYet:
    """A token's claims (an id and a role) stand for the user, confirmed by the read."""

    @pytest.fixture
    def trips(self, rider, driver, make_user, make_trip):
        make_trip(rider, status="COMPLETED", driver=driver)
        make_trip(rider, status="CANCELED")
        make_trip(rider, status="STARTED", driver=driver)
        make_trip(make_user("rider"))

    @staticmethod
    def claimed(user, role=None) -> ClaimedUser:
        return ClaimedUser(user.id, user.role if role is None else role)

    @pytest.mark.parametrize(
        "read", [lambda trips: trips.page_counted(0, 2), list], ids=["a page", "every trip"]
    )
    def test_trips_are_read_and_their_user_confirmed_in_one_statement(
        self, trips, rider, driver, django_assert_num_queries, read
    ):
        for user in (rider, driver):
            for status in (None, "COMPLETED"):
                expected = read(VisibleTrips(user, status))
                with django_assert_num_queries(1):
                    found = read(VisibleTrips(self.claimed(user), status, unread=True))

                assert found == expected
                assert found[0]

    @pytest.mark.parametrize(
        "read",
        [
            lambda trips: trips.page_counted(0, 2),
            lambda trips: trips.page_counted(5, 2),
            list,
        ],
        ids=["a page", "past the last trip", "every trip"],
    )
    def test_the_user_is_confirmed_on_every_read(self, trips, rider, make_user, read):
        # Each read of an unread user confirms them, the count too; so does one that
        # finds no trips.
        assert VisibleTrips(self.claimed(rider), unread=True).count() == 3
        nobody = make_user("")
        for user in (rider, nobody):
            assert read(VisibleTrips(self.claimed(user), unread=True)) == read(VisibleTrips(user))

        rider.is_active = False
        rider.save()
        with pytest.raises(UserNotConfirmed):
            read(VisibleTrips(self.claimed(rider), unread=True))
        with pytest.raises(UserNotConfirmed):
            VisibleTrips(self.claimed(rider), unread=True).count()
        with pytest.raises(UserNotConfirmed):
            read(VisibleTrips(self.claimed(rider), "IN_PROGRESS", unread=True))

    @pytest.mark.parametrize("page", [(0, 2), (9, 2), (0, 1)], ids=["trips", "none", "one"])
    def test_a_user_of_another_role_or_gone_is_not_confirmed(self, trips, rider, driver, page):
        with pytest.raises(UserNotConfirmed):
            VisibleTrips(self.claimed(rider, "driver"), unread=True).page_counted(*page)
        with pytest.raises(UserNotConfirmed):
            VisibleTrips(self.claimed(driver, "rider"), unread=True).page_counted(*page)

        # A user with trips cannot be deleted; one deleted has no trips to list.
        gone = User(id=rider.id + 1000, role="rider")
        with pytest.raises(UserNotConfirmed):
            VisibleTrips(gone, unread=True).page_counted(*page)
        with pytest.raises(UserNotConfirmed):
            list(VisibleTrips(gone, unread=True))


def test_a_page_of_the_trip_list_has_a_trip_or_more_from_an_offset_of_zero_or_more(rider):
    trips = VisibleTrips(rider)

    for offset, limit in ((-1, 2), (0, 0), (2, -1)):
        with pytest.raises(ValueError):
            trips.page_counted(offset, limit)
