"""The trip services: the events they deliver after commit, the races the database
settles, and the queries the hot paths cost."""

import queue
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.postgresql.kept_plans import plans_prepared
from config.tests.test_postgresql import prepared_statements
from realtime.delivery import AVAILABLE_DRIVERS, DRIVERS_STILL_OFFERED, user_group
from trips import errors, services
from trips.events import Origin, trip_payload
from trips.models import Trip
from trips.selectors import trips_active_for, user_with_active_trips
from trips.tests.conftest import trip_rows

TRIPS = "/api/trip/"
REQUEST = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}


def event(kind: str, trip: Trip, *, origin: Origin | None = None) -> dict:
    """The channel-layer message a trip event is, with the trip as it is now."""
    return {
        "type": "trip.event",
        "kind": kind,
        "trip": trip_payload(Trip.objects.get(id=trip.id)),
        "origin": origin.channel if origin else None,
        "request_id": origin.request_id if origin else None,
    }


class Rollback(Exception):
    pass


class TestServiceRules:
    """Rules the REST API cannot reach (its serializers refuse the input first)."""

    pytestmark = pytest.mark.django_db

    @pytest.mark.parametrize("status", ["REQUESTED", "STARTED", "CANCELED", "FLYING"])
    def test_a_driver_can_only_advance_to_the_next_ride_steps(
        self, driver, rider, make_trip, status
    ):
        trip = make_trip(rider, status=Trip.Status.STARTED, driver=driver)
        before = trip_rows()

        with pytest.raises(errors.StatusOutOfOrder) as refusal:
            services.trip_advance(trip_id=trip.id, driver=driver, status=status)

        assert refusal.value.trip.id == trip.id
        assert trip_rows() == before

    def test_a_new_request_says_it_is_new_and_a_retry_says_it_is_not(self, rider):
        trip, created = services.trip_request(rider=rider, **REQUEST, request_id="r-1")
        again, created_again = services.trip_request(rider=rider, **REQUEST, request_id="r-1")

        assert (created, created_again) == (True, False)
        assert again.id == trip.id
        assert trip.rider == rider
        assert trip.status == Trip.Status.REQUESTED

    def test_the_trip_a_request_returns_is_the_row_it_stored(self, rider):
        fields = Trip._meta.concrete_fields
        coordinates = {
            "pick_up_lat": 52.5,
            "pick_up_lng": 13.4,
            "drop_off_lat": 52.6,
            "drop_off_lng": 13.5,
        }

        trip, _ = services.trip_request(rider=rider, **REQUEST, **coordinates, request_id="r-1")

        stored = Trip.objects.get(id=trip.id)
        assert {f.attname: getattr(trip, f.attname) for f in fields} == {
            f.attname: getattr(stored, f.attname) for f in fields
        }
        assert not trip._state.adding

    def test_a_refusal_names_no_trip_the_user_may_not_see(self, make_user, make_trip):
        trip = make_trip(make_user("rider"), status="STARTED", driver=make_user("driver"))

        with pytest.raises(errors.TripNotFound) as refusal:
            services.trip_cancel(trip_id=trip.id, user=make_user("driver"))

        assert refusal.value.trip is None
        assert refusal.value.context() == {}


# What a user's rights (`User.rights`) may have become since the caller read them.
RIGHTS_CHANGED = {
    "deactivated": {"is_active": False},
    "made a rider": {"role": "rider"},
    "approval withdrawn": {"driver_approved_at": None},
}


@pytest.mark.django_db
class TestRightsInTheStepsStatement:
    """An accept or an advance tests, in its own statement, that the acting user still
    has the rights the caller read them with: a socket need not read its user first."""

    @pytest.fixture
    def approved_driver(self, make_user):
        return make_user("driver", driver_approved_at=timezone.now())

    @pytest.fixture(params=["accept", "advance"])
    def step(self, request, rider, approved_driver, make_trip):
        """A step, as the driver the caller read (before any change to their rights)."""
        if request.param == "accept":
            trip = make_trip(rider)
            return partial(services.trip_accept, trip_id=trip.id, driver=approved_driver)
        trip = make_trip(rider, status="STARTED", driver=approved_driver)
        return partial(
            services.trip_advance, trip_id=trip.id, driver=approved_driver, status="IN_PROGRESS"
        )

    @pytest.mark.parametrize("change", RIGHTS_CHANGED)
    def test_a_step_changes_nothing_once_the_rights_it_was_read_with_are_gone(
        self, approved_driver, step, deliveries, change
    ):
        type(approved_driver).objects.filter(id=approved_driver.id).update(**RIGHTS_CHANGED[change])
        before = trip_rows()

        with pytest.raises(errors.TripError):
            step()

        assert trip_rows() == before
        assert deliveries == []

    def test_a_step_is_made_while_the_rights_are_as_read(self, approved_driver, step):
        type(approved_driver).objects.filter(id=approved_driver.id).update(first_name="Renamed")

        trip = step()

        assert trip.driver.first_name == "Renamed"


# What a rider's rights may have become since the caller read them.
RIDER_RIGHTS_CHANGED = {
    "deactivated": {"is_active": False},
    "made a driver": {"role": "driver"},
}


@pytest.mark.django_db
class TestRightsInTheRequestsInsert:
    """A request tests, in its own insert, that the rider still has the rights the
    caller read them with: a socket need not read its user first."""

    @pytest.mark.parametrize("change", RIDER_RIGHTS_CHANGED)
    def test_a_request_makes_no_trip_once_the_rights_it_was_read_with_are_gone(
        self, rider, django_capture_on_commit_callbacks, change
    ):
        type(rider).objects.filter(id=rider.id).update(**RIDER_RIGHTS_CHANGED[change])

        with (
            django_capture_on_commit_callbacks() as after_commit,
            pytest.raises(errors.RightsChanged),
        ):
            services.trip_request(rider=rider, **REQUEST, request_id="r-1")

        assert trip_rows() == []
        assert after_commit == []  # nobody told

    def test_a_retried_request_is_not_answered_once_the_rights_are_gone(
        self, rider, django_capture_on_commit_callbacks
    ):
        services.trip_request(rider=rider, **REQUEST, request_id="r-1")
        before = trip_rows()
        type(rider).objects.filter(id=rider.id).update(is_active=False)

        with (
            django_capture_on_commit_callbacks() as after_commit,
            pytest.raises(errors.RightsChanged),
        ):
            services.trip_request(rider=rider, **REQUEST, request_id="r-1")

        assert trip_rows() == before
        assert after_commit == []

    def test_a_request_is_made_while_the_rights_are_as_read(self, rider):
        type(rider).objects.filter(id=rider.id).update(first_name="Renamed")

        trip, created = services.trip_request(rider=rider, **REQUEST)

        assert created
        assert Trip.objects.get(id=trip.id).rider_id == rider.id


@pytest.mark.django_db
class TestRightsInACancel:
    """A rider's cancel of their request tests their rights in its own statement; any
    other cancel confirms them before it reads the trip."""

    @pytest.fixture(params=["requested", "accepted"])
    def trip(self, request, rider, driver, make_trip):
        if request.param == "requested":
            return make_trip(rider)
        return make_trip(rider, status="STARTED", driver=driver)

    @pytest.mark.parametrize("change", RIDER_RIGHTS_CHANGED)
    def test_a_cancel_changes_nothing_once_the_rights_it_was_read_with_are_gone(
        self, rider, trip, django_capture_on_commit_callbacks, change
    ):
        type(rider).objects.filter(id=rider.id).update(**RIDER_RIGHTS_CHANGED[change])
        before = trip_rows()

        with (
            django_capture_on_commit_callbacks() as after_commit,
            pytest.raises(errors.RightsChanged),
        ):
            services.trip_cancel(trip_id=trip.id, user=rider)

        assert trip_rows() == before
        assert after_commit == []  # nobody told

    def test_a_cancel_is_made_while_the_rights_are_as_read(self, rider, trip):
        type(rider).objects.filter(id=rider.id).update(first_name="Renamed")

        canceled = services.trip_cancel(trip_id=trip.id, user=rider)

        assert canceled.status == Trip.Status.CANCELED
        assert canceled.rider.first_name == "Renamed"
        assert Trip.objects.get(id=trip.id).cancel_reason == Trip.CancelReason.RIDER


@pytest.mark.django_db(transaction=True)
class TestEventsAfterCommit:
    def test_a_request_tells_the_rider_and_is_offered_to_available_drivers(
        self, deliveries, inbox, rider, driver
    ):
        rider_inbox, available = inbox(user_group(rider.id)), inbox(AVAILABLE_DRIVERS)
        drivers_own = inbox(user_group(driver.id))

        trip, _ = services.trip_request(rider=rider, **REQUEST)

        assert rider_inbox.receive_all() == [event("trip.requested", trip)]
        assert available.receive_all() == [event("trip.offered", trip)]
        assert drivers_own.receive_nothing()

    def test_an_accept_tells_both_parties_and_the_drivers_it_was_offered_to(
        self, deliveries, inbox, rider, driver, make_user, make_trip
    ):
        trip = make_trip(rider)
        bystander = make_user("driver")
        rider_inbox, driver_inbox = inbox(user_group(rider.id)), inbox(user_group(driver.id))
        available, still_offered = inbox(AVAILABLE_DRIVERS), inbox(DRIVERS_STILL_OFFERED)
        bystander_inbox = inbox(user_group(bystander.id))

        services.trip_accept(trip_id=trip.id, driver=driver)

        accepted = event("trip.accepted", trip)
        assert accepted["trip"]["status"] == "STARTED"
        assert accepted["trip"]["driver"]["id"] == driver.id
        assert rider_inbox.receive_all() == [accepted]
        assert driver_inbox.receive_all() == [accepted]
        # Offered to every available driver (no pick-up point), so the drivers available
        # now and those who left since with the offer open hear it is gone; each socket
        # shows it only if it had shown the offer. Other driver sockets hear nothing.
        assert available.receive_all() == [event("trip.taken", trip)]
        assert still_offered.receive_all() == [event("trip.taken", trip)]
        assert bystander_inbox.receive_nothing()
        assert sorted(name for _, name, _ in deliveries) == sorted(
            [user_group(rider.id), user_group(driver.id), AVAILABLE_DRIVERS, DRIVERS_STILL_OFFERED]
        )

    def test_advancing_tells_both_parties_and_nobody_else(
        self, deliveries, inbox, rider, driver, make_trip
    ):
        trip = make_trip(rider, status="STARTED", driver=driver, accepted_at=timezone.now())
        rider_inbox, driver_inbox = inbox(user_group(rider.id)), inbox(user_group(driver.id))
        available = inbox(AVAILABLE_DRIVERS)

        services.trip_advance(trip_id=trip.id, driver=driver, status="IN_PROGRESS")

        updated = event("trip.updated", trip)
        assert updated["trip"]["status"] == "IN_PROGRESS"
        assert rider_inbox.receive_all() == [updated]
        assert driver_inbox.receive_all() == [updated]
        assert available.receive_nothing()

    def test_a_rider_canceling_a_request_withdraws_the_offer(
        self, deliveries, inbox, rider, make_trip
    ):
        trip = make_trip(rider)
        rider_inbox = inbox(user_group(rider.id))
        available, still_offered = inbox(AVAILABLE_DRIVERS), inbox(DRIVERS_STILL_OFFERED)

        services.trip_cancel(trip_id=trip.id, user=rider)

        canceled = event("trip.canceled", trip)
        assert canceled["trip"]["status"] == "CANCELED"
        assert rider_inbox.receive_all() == [canceled]
        assert available.receive_all() == [canceled]
        assert still_offered.receive_all() == [canceled]

    def test_a_driver_dropping_out_tells_the_rider_and_themselves_and_reoffers_the_trip(
        self, deliveries, inbox, rider, driver, make_trip
    ):
        trip = make_trip(rider, status="STARTED", driver=driver, accepted_at=timezone.now())
        rider_inbox, driver_inbox = inbox(user_group(rider.id)), inbox(user_group(driver.id))
        available = inbox(AVAILABLE_DRIVERS)

        services.trip_cancel(trip_id=trip.id, user=driver)

        updated = event("trip.updated", trip)
        assert (updated["trip"]["status"], updated["trip"]["driver"]) == ("REQUESTED", None)
        assert rider_inbox.receive_all() == [updated]
        assert driver_inbox.receive_all() == [updated]
        assert available.receive_all() == [event("trip.offered", trip)]

    def test_nothing_is_delivered_before_the_commit(self, deliveries, rider, driver, make_trip):
        trip = make_trip(rider)

        with transaction.atomic():
            services.trip_accept(trip_id=trip.id, driver=driver)
            assert deliveries == []

        assert len(deliveries) == 4

    @pytest.mark.parametrize("step", ["request", "accept", "advance", "cancel", "drop_out"])
    def test_a_change_that_is_rolled_back_delivers_nothing(
        self, deliveries, inbox, make_user, make_trip, step
    ):
        rider, newcomer, free_driver = make_user("rider"), make_user("rider"), make_user("driver")
        requested = make_trip(rider)
        busy_driver = make_user("driver")
        started = make_trip(
            make_user("rider"), status="STARTED", driver=busy_driver, accepted_at=timezone.now()
        )
        calls = {
            "request": lambda: services.trip_request(rider=newcomer, **REQUEST),
            "accept": lambda: services.trip_accept(trip_id=requested.id, driver=free_driver),
            "advance": lambda: services.trip_advance(
                trip_id=started.id, driver=busy_driver, status="IN_PROGRESS"
            ),
            "cancel": lambda: services.trip_cancel(trip_id=requested.id, user=rider),
            "drop_out": lambda: services.trip_cancel(trip_id=started.id, user=busy_driver),
        }
        users = (rider, newcomer, free_driver, busy_driver, started.rider)
        inboxes = [inbox(user_group(user.id)) for user in users] + [
            inbox(AVAILABLE_DRIVERS),
            inbox(DRIVERS_STILL_OFFERED),
        ]
        before = trip_rows()

        with pytest.raises(Rollback), transaction.atomic():
            calls[step]()
            raise Rollback

        assert deliveries == []
        assert all(each.receive_nothing() for each in inboxes)
        assert trip_rows() == before

    @pytest.mark.parametrize(
        "refusal",
        [
            "driver_requests",
            "rider_requests_twice",
            "rider_accepts",
            "second_driver_accepts",
            "busy_driver_accepts",
            "out_of_order",
            "other_driver_advances",
            "other_rider_cancels",
            "in_progress_canceled",
        ],
    )
    def test_a_refused_call_delivers_nothing(
        self, deliveries, inbox, rider, driver, make_user, make_trip, refusal
    ):
        other_rider, other_driver = make_user("rider"), make_user("driver")
        requested = make_trip(other_rider)
        started = make_trip(rider, status="STARTED", driver=driver, accepted_at=timezone.now())
        riding, riding_driver = make_user("rider"), make_user("driver")
        in_progress = make_trip(riding, status="IN_PROGRESS", driver=riding_driver)
        calls = {
            "driver_requests": lambda: services.trip_request(rider=other_driver, **REQUEST),
            "rider_requests_twice": lambda: services.trip_request(rider=rider, **REQUEST),
            "rider_accepts": lambda: services.trip_accept(trip_id=requested.id, driver=rider),
            "second_driver_accepts": lambda: services.trip_accept(
                trip_id=started.id, driver=other_driver
            ),
            "busy_driver_accepts": lambda: services.trip_accept(
                trip_id=requested.id, driver=driver
            ),
            "out_of_order": lambda: services.trip_advance(
                trip_id=started.id, driver=driver, status="COMPLETED"
            ),
            "other_driver_advances": lambda: services.trip_advance(
                trip_id=started.id, driver=other_driver, status="IN_PROGRESS"
            ),
            "other_rider_cancels": lambda: services.trip_cancel(
                trip_id=started.id, user=other_rider
            ),
            "in_progress_canceled": lambda: services.trip_cancel(
                trip_id=in_progress.id, user=riding
            ),
        }
        users = (rider, driver, other_rider, other_driver, riding, riding_driver)
        inboxes = [inbox(user_group(user.id)) for user in users] + [
            inbox(AVAILABLE_DRIVERS),
            inbox(DRIVERS_STILL_OFFERED),
        ]
        before = trip_rows()

        with pytest.raises(errors.TripError):
            calls[refusal]()

        assert deliveries == []
        assert all(each.receive_nothing() for each in inboxes)
        assert trip_rows() == before

    def test_a_retried_request_is_answered_to_the_asking_socket_only(
        self, deliveries, inbox, rider
    ):
        first, _ = services.trip_request(rider=rider, **REQUEST, request_id="r-1")
        rider_inbox, available = inbox(user_group(rider.id)), inbox(AVAILABLE_DRIVERS)
        asking = inbox()
        origin = Origin(channel=asking.channel, request_id="r-1")

        again, created = services.trip_request(
            rider=rider, **REQUEST, request_id="r-1", origin=origin
        )

        assert (again.id, created) == (first.id, False)
        assert asking.receive_all() == [event("trip.requested", first, origin=origin)]
        assert rider_inbox.receive_nothing()
        assert available.receive_nothing()


@pytest.mark.django_db(transaction=True)
class TestFollowingEvents:
    """A client that applies the events it receives ends where a fresh fetch is."""

    def test_the_last_event_of_a_ride_is_what_rest_returns(
        self, deliveries, inbox, client_for, rider, driver
    ):
        rider_client, driver_client = client_for(rider), client_for(driver)
        rider_inbox, driver_inbox = inbox(user_group(rider.id)), inbox(user_group(driver.id))

        trip_id = rider_client.post(TRIPS, REQUEST, format="json").json()["id"]
        driver_client.post(f"{TRIPS}{trip_id}/accept/")
        for status in ("IN_PROGRESS", "COMPLETED"):
            driver_client.post(f"{TRIPS}{trip_id}/advance/", {"status": status}, format="json")

        followed = rider_inbox.receive_all()
        assert [message["kind"] for message in followed] == [
            "trip.requested",
            "trip.accepted",
            "trip.updated",
            "trip.updated",
        ]
        assert [message["trip"]["status"] for message in followed] == [
            "REQUESTED",
            "STARTED",
            "IN_PROGRESS",
            "COMPLETED",
        ]
        fresh = rider_client.get(f"{TRIPS}{trip_id}/").json()
        assert followed[-1]["trip"] == fresh
        assert (
            driver_inbox.receive_all()[-1]["trip"] == driver_client.get(f"{TRIPS}{trip_id}/").json()
        )

    def test_each_event_is_the_state_a_fetch_would_give_at_that_moment(
        self, deliveries, inbox, client_for, rider, driver, make_user
    ):
        rider_client = client_for(rider)
        rider_inbox = inbox(user_group(rider.id))
        second_driver = make_user("driver")

        def latest_event_is_fresh(trip_id):
            *_, latest = rider_inbox.receive_all()
            assert latest["trip"] == rider_client.get(f"{TRIPS}{trip_id}/").json()

        trip_id = rider_client.post(TRIPS, REQUEST, format="json").json()["id"]
        latest_event_is_fresh(trip_id)
        client_for(driver).post(f"{TRIPS}{trip_id}/accept/")
        latest_event_is_fresh(trip_id)
        client_for(driver).post(f"{TRIPS}{trip_id}/cancel/")
        latest_event_is_fresh(trip_id)
        client_for(second_driver).post(f"{TRIPS}{trip_id}/accept/")
        latest_event_is_fresh(trip_id)
        rider_client.post(f"{TRIPS}{trip_id}/cancel/")
        latest_event_is_fresh(trip_id)
        assert rider_client.get(f"{TRIPS}{trip_id}/").json()["status"] == "CANCELED"


# --- Races on PostgreSQL -------------------------------------------------------------


def at_once(*calls: Callable) -> list:
    """Run `calls` each on its own thread and connection, released together; the
    result of each, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index: int, call: Callable) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def one_after_the_other(first: Callable, second: Callable) -> tuple:
    """Run `first` in a transaction held open until `second`, on another connection, is
    blocked by it inside PostgreSQL; then commit `first`. Forces the interleaving in
    which `second` read before `first` committed and wrote after."""
    results: dict = {}
    first_done, commit, pids = threading.Event(), threading.Event(), queue.Queue()

    def run_first() -> None:
        try:
            with transaction.atomic():
                results["first"] = first()
                first_done.set()
                commit.wait(timeout=10)
        except Exception as error:
            results["first"] = error
            first_done.set()
        finally:
            connection.close()

    def run_second() -> None:
        try:
            connection.ensure_connection()
            pids.put(connection.connection.info.backend_pid)
            results["second"] = second()
        except Exception as error:
            results["second"] = error
        finally:
            connection.close()

    first_thread = threading.Thread(target=run_first)
    first_thread.start()
    assert first_done.wait(timeout=10)
    second_thread = threading.Thread(target=run_second)
    second_thread.start()
    blocked = _blocked_on_a_lock(pids.get(timeout=10), second_thread)
    commit.set()
    for thread in (first_thread, second_thread):
        thread.join(timeout=30)
    assert blocked, "the second call never waited for the first one's transaction"
    return results["first"], results["second"]


def _blocked_on_a_lock(pid: int, thread: threading.Thread) -> bool:
    # PostgreSQL announces a lock wait nowhere but in pg_stat_activity, so poll it.
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while thread.is_alive() and time.monotonic() < deadline:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == "Lock":
                return True
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestRaces:
    ROUNDS = 5
    DRIVERS = 8

    def test_of_drivers_accepting_one_trip_at_once_exactly_one_wins(self, make_user, make_trip):
        for _ in range(self.ROUNDS):
            trip = make_trip(make_user("rider"))
            drivers = [make_user("driver") for _ in range(self.DRIVERS)]

            results = at_once(
                *(partial(services.trip_accept, trip_id=trip.id, driver=each) for each in drivers)
            )

            winners = [result for result in results if isinstance(result, Trip)]
            losers = [result for result in results if not isinstance(result, Trip)]
            assert len(winners) == 1, results
            assert all(isinstance(loser, errors.TripNotAvailable) for loser in losers), losers
            trip.refresh_from_db()
            assert trip.status == Trip.Status.STARTED
            assert trip.driver_id == winners[0].driver_id
            assert all(loser.trip.driver_id == trip.driver_id for loser in losers)

    def test_a_driver_accepting_two_trips_at_once_gets_one(self, driver, make_user, make_trip):
        for _ in range(self.ROUNDS):
            trips = [make_trip(make_user("rider")) for _ in range(2)]

            results = at_once(
                *(partial(services.trip_accept, trip_id=each.id, driver=driver) for each in trips)
            )

            assert sorted(type(result).__name__ for result in results) == ["DriverBusy", "Trip"]
            assert Trip.objects.filter(driver=driver, status=Trip.Status.STARTED).count() == 1
            Trip.objects.filter(driver=driver).update(status=Trip.Status.COMPLETED)

    def test_a_rider_requesting_twice_at_once_gets_one_trip(self, make_user):
        for _ in range(self.ROUNDS):
            rider = make_user("rider")

            request = partial(services.trip_request, rider=rider, **REQUEST)
            results = at_once(request, request)

            assert sorted(type(result).__name__ for result in results) == [
                "RiderHasActiveTrip",
                "tuple",
            ]
            assert Trip.objects.filter(rider=rider).count() == 1

    def test_a_request_sent_twice_at_once_makes_one_trip(self, make_user):
        for _ in range(self.ROUNDS):
            rider = make_user("rider")

            request = partial(services.trip_request, rider=rider, **REQUEST, request_id="r-1")
            results = at_once(request, request)

            assert all(isinstance(result, tuple) for result in results), results
            (first, first_created), (second, second_created) = results
            assert first.id == second.id
            assert sorted([first_created, second_created]) == [False, True]
            assert Trip.objects.filter(rider=rider).count() == 1

    def test_a_driver_who_won_another_trip_meanwhile_is_busy(self, driver, make_user, make_trip):
        trip, other = make_trip(make_user("rider")), make_trip(make_user("rider"))

        won, refused = one_after_the_other(
            lambda: services.trip_accept(trip_id=trip.id, driver=driver),
            lambda: services.trip_accept(trip_id=other.id, driver=driver),
        )

        assert isinstance(won, Trip)
        assert isinstance(refused, errors.DriverBusy)
        assert refused.trip.id == other.id
        assert refused.trip.status == Trip.Status.REQUESTED
        assert Trip.objects.get(id=other.id).driver is None

    def test_a_rider_whose_other_request_committed_meanwhile_has_an_active_trip(self, rider):
        made, refused = one_after_the_other(
            lambda: services.trip_request(rider=rider, **REQUEST),
            lambda: services.trip_request(rider=rider, **REQUEST),
        )

        trip, _ = made
        assert isinstance(refused, errors.RiderHasActiveTrip)
        assert refused.trip.id == trip.id
        assert Trip.objects.filter(rider=rider).count() == 1

    def test_a_retry_racing_its_first_request_gets_the_first_trip_and_is_answered(
        self, deliveries, inbox, rider
    ):
        asking = inbox()
        origin = Origin(channel=asking.channel, request_id="r-1")

        made, retried = one_after_the_other(
            partial(services.trip_request, rider=rider, **REQUEST, request_id="r-1"),
            partial(services.trip_request, rider=rider, **REQUEST, request_id="r-1", origin=origin),
        )

        assert made[1] is True
        assert retried[0].id == made[0].id
        assert retried[1] is False
        assert Trip.objects.filter(rider=rider).count() == 1
        # The retrying socket hears what it would have heard had it come second.
        assert asking.receive_all() == [event("trip.requested", made[0], origin=origin)]


# --- Query counts on the hot paths ---------------------------------------------------


@pytest.mark.django_db
def values_of(instance) -> list:
    return [getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestStepsInOneStatement:
    """On PostgreSQL a trip step outside a transaction is one statement, which is its
    own transaction: no BEGIN and COMMIT around it."""

    @pytest.fixture
    def commits(self, monkeypatch) -> list:
        made = []
        commit = connection.commit
        monkeypatch.setattr(connection, "commit", lambda: made.append(commit()))
        return made

    def test_an_advance_is_one_statement_and_reads_the_trip_as_the_orm_does(
        self, rider, driver, make_trip, commits, django_assert_num_queries
    ):
        trip = make_trip(rider, status="STARTED", driver=driver)

        with django_assert_num_queries(1):
            advanced = services.trip_advance(trip_id=trip.id, driver=driver, status="IN_PROGRESS")

        assert commits == []
        stored = Trip.objects.select_related("rider", "driver").get(id=trip.id)
        assert stored.status == Trip.Status.IN_PROGRESS and stored.picked_up_at is not None
        assert values_of(advanced) == values_of(stored)
        assert values_of(advanced.rider) == values_of(stored.rider)
        assert values_of(advanced.driver) == values_of(stored.driver)

    def test_an_accept_is_one_statement(
        self, rider, driver, make_trip, commits, django_assert_num_queries
    ):
        trip = make_trip(rider)

        with django_assert_num_queries(1):
            accepted = services.trip_accept(trip_id=trip.id, driver=driver)

        assert commits == []
        assert accepted.driver.id == driver.id and accepted.status == Trip.Status.STARTED
        stored = Trip.objects.get(id=trip.id)
        assert stored.driver_id == driver.id and stored.status == Trip.Status.STARTED
        assert values_of(accepted) == values_of(stored)

    def test_every_statement_of_a_round_keeps_its_plan(self, rider, driver):
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")  # whatever tests before prepared

        with CaptureQueriesContext(connection) as ran:
            trips_active_for(rider)  # a socket's handshake
            trip, _ = services.trip_request(rider=rider, **REQUEST)
            services.trip_accept(trip_id=trip.id, driver=driver)
            for status in ("IN_PROGRESS", "COMPLETED"):
                services.trip_advance(trip_id=trip.id, driver=driver, status=status)

        # The handshake's read, the request, the accept, and the two advances, the
        # drop-off measuring the trail in its own statement.
        assert len(ran) == 5
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (5,)

    def test_the_warm_ups_prepare_a_round_s_steps_and_handshake_and_change_nothing(
        self, rider, driver, make_trip, commits
    ):
        make_trip(rider, status="STARTED", driver=driver)  # a trip to leave alone
        before = trip_rows()
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")  # whatever tests before prepared

        plans_prepared()
        warmed = set(prepared_statements())

        assert trip_rows() == before
        assert commits == []
        # The accept's, the pick-up's and the drop-off's, and the handshake's read.
        assert sum(statement.startswith("WITH t AS (UPDATE") for statement in warmed) == 3
        assert any('FROM "accounts_user" AS u' in statement for statement in warmed)
        Trip.objects.all().delete()
        user_with_active_trips(rider.id)
        trip, _ = services.trip_request(rider=rider, **REQUEST)
        services.trip_accept(trip_id=trip.id, driver=driver)
        for status in ("IN_PROGRESS", "COMPLETED"):
            services.trip_advance(trip_id=trip.id, driver=driver, status=status)
        # Only the request's insert, which no warm-up can run without making a trip.
        assert len(set(prepared_statements()) - warmed) == 1

    def test_a_refused_step_changes_nothing(self, rider, driver, make_user, make_trip, commits):
        trip = make_trip(rider, status="STARTED", driver=driver)
        before = trip_rows()

        with pytest.raises(errors.TripNotFound):  # another driver's trip is not theirs to see
            services.trip_advance(trip_id=trip.id, driver=make_user("driver"), status="IN_PROGRESS")
        with pytest.raises(errors.StatusOutOfOrder):
            services.trip_advance(trip_id=trip.id, driver=driver, status="COMPLETED")

        assert trip_rows() == before


def change_and_read() -> int:
    """A trip step's conditional update and its re-read: one statement on PostgreSQL."""
    return 1 if connection.vendor == "postgresql" else 2


class TestQueryCounts:
    """Inside the test's transaction each `atomic` block is a SAVEPOINT and its RELEASE,
    and those are counted too: the service's own block, or the one around the write
    whose IntegrityError means a lost race (which, outside a transaction, a trip step's
    single statement does not need)."""

    def test_trip_request(self, rider, django_assert_num_queries):
        # The insert alone: the constraints, not a read first, refuse what they must.
        with django_assert_num_queries(1):
            services.trip_request(rider=rider, **REQUEST, request_id="r-1")

    def test_trip_accept(self, rider, driver, make_trip, django_assert_num_queries):
        trip = make_trip(rider)

        # The conditional update and the trip re-read; 1 savepoint.
        with django_assert_num_queries(change_and_read() + 2):
            services.trip_accept(trip_id=trip.id, driver=driver)

    def test_trip_advance(self, rider, driver, make_trip, django_assert_num_queries):
        trip = make_trip(rider, status="STARTED", driver=driver)

        # The conditional update and the trip re-read; 1 savepoint.
        with django_assert_num_queries(change_and_read() + 2):
            services.trip_advance(trip_id=trip.id, driver=driver, status="IN_PROGRESS")

    def test_trip_completion(self, rider, driver, make_trip, django_assert_num_queries):
        trip = make_trip(rider, status="IN_PROGRESS", driver=driver)

        # The conditional update, which measures the trail itself on PostgreSQL
        # (elsewhere the trail is read first), and the trip re-read; 1 savepoint.
        trail_read = 0 if connection.vendor == "postgresql" else 1
        with django_assert_num_queries(trail_read + change_and_read() + 2):
            services.trip_advance(trip_id=trip.id, driver=driver, status="COMPLETED")

    def test_trip_cancel(self, rider, make_trip, django_assert_num_queries):
        trip = make_trip(rider)

        # A request no driver has taken: the conditional update and the trip re-read;
        # 1 savepoint.
        with django_assert_num_queries(change_and_read() + 2):
            services.trip_cancel(trip_id=trip.id, user=rider)

    def test_trip_cancel_once_accepted(self, rider, driver, make_trip, django_assert_num_queries):
        trip = make_trip(rider, status="STARTED", driver=driver)

        # The conditional update that changes nothing, and so is read back nowhere (1
        # savepoint), the rights, then the locked read, visibility, the update, the
        # trip re-read (1 savepoint).
        with django_assert_num_queries(1 + 2 + 1 + 4 + 2):
            services.trip_cancel(trip_id=trip.id, user=rider)

    def test_rest_request(self, client_for, rider, django_assert_num_queries):
        client = client_for(rider)

        # The authenticated user, then the service's insert.
        with django_assert_num_queries(1 + 1):
            assert client.post(TRIPS, REQUEST, format="json").status_code == 201

    def test_rest_accept(self, client_for, rider, driver, make_trip, django_assert_num_queries):
        trip = make_trip(rider)
        client = client_for(driver)

        # The authenticated user, then the service.
        with django_assert_num_queries(1 + change_and_read() + 2):
            assert client.post(f"{TRIPS}{trip.id}/accept/").status_code == 200
