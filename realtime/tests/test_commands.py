"""A socket's trip commands, carried out for its user as the socket last read them: their
rights are those the database has when the command is carried out."""

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from realtime.commands import SessionEnded, command_execute
from realtime.delivery import jobs_collected
from realtime.protocols import AcceptTrip, AdvanceTrip, CancelTrip, RequestTrip
from trips import errors
from trips.events import Origin
from trips.models import Trip
from trips.tests.conftest import trip_rows

# Committed as sockets commit, so that the work scheduled for after a commit is seen.
pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = Origin(channel="test.socket", request_id=None)
ADDRESSES = {"pick_up_address": "1 Main Street", "drop_off_address": "99 Harbour Road"}


@pytest.fixture(autouse=True)
def approval_required(settings):
    settings.DRIVER_APPROVAL_REQUIRED = True


@pytest.fixture
def approved_driver(make_user):
    return make_user("driver", driver_approved_at=timezone.now())


def rights_become(user: User, **rights) -> None:
    """Change the user's rights behind the socket's back: its copy stays as it was."""
    User.objects.filter(id=user.id).update(**rights)


def executed(user: User, command) -> tuple[User, list]:
    """The user as the command leaves them for the socket, and the work it scheduled for
    after its commit (its events among them)."""
    with jobs_collected() as jobs:
        user = command_execute(user, command, ORIGIN)
    return user, jobs


def refused(user: User, command) -> Exception:
    """What refused the command; nothing was scheduled to be delivered."""
    with jobs_collected() as jobs, pytest.raises((errors.TripError, SessionEnded)) as refusal:
        command_execute(user, command, ORIGIN)
    assert jobs == []
    return refusal.value


def command(step: str, trip: Trip):
    if step == "accept":
        return AcceptTrip("trip.accept", trip.id)
    return AdvanceTrip("trip.advance", trip.id, "IN_PROGRESS")


@pytest.mark.parametrize("step", ["accept", "advance"])
class TestSteps:
    @pytest.fixture
    def trip(self, rider, approved_driver, make_trip, step):
        if step == "accept":
            return make_trip(rider)
        return make_trip(rider, status="STARTED", driver=approved_driver)

    def test_a_step_reads_no_user_when_it_is_made(
        self, approved_driver, trip, step, django_assert_num_queries
    ):
        # No read of the user: the change and the trip's read are one statement on
        # PostgreSQL (elsewhere BEGIN, the change, the read, COMMIT).
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 4):
            user, jobs = executed(approved_driver, command(step, trip))

        assert user is approved_driver
        assert Trip.objects.get(id=trip.id).status != trip.status
        assert jobs  # its events

    def test_a_deactivated_user_s_step_ends_their_session_and_changes_nothing(
        self, approved_driver, trip, step
    ):
        rights_become(approved_driver, is_active=False)
        before = trip_rows()

        assert isinstance(refused(approved_driver, command(step, trip)), SessionEnded)
        assert trip_rows() == before

    def test_a_step_is_refused_to_a_driver_made_a_rider_and_changes_nothing(
        self, approved_driver, trip, step
    ):
        rights_become(approved_driver, role="rider")
        before = trip_rows()

        assert isinstance(refused(approved_driver, command(step, trip)), errors.RoleRequired)
        assert trip_rows() == before


def test_an_accept_is_refused_once_the_approval_is_withdrawn(approved_driver, rider, make_trip):
    trip = make_trip(rider)
    rights_become(approved_driver, driver_approved_at=None)
    before = trip_rows()

    refusal = refused(approved_driver, AcceptTrip("trip.accept", trip.id))

    assert isinstance(refusal, errors.DriverNotApproved)
    assert trip_rows() == before


def test_an_advance_goes_on_without_approval_for_a_trip_under_way(
    approved_driver, rider, make_trip
):
    trip = make_trip(rider, status="STARTED", driver=approved_driver)
    rights_become(approved_driver, driver_approved_at=None)

    user, _ = executed(approved_driver, AdvanceTrip("trip.advance", trip.id, "IN_PROGRESS"))

    assert Trip.objects.get(id=trip.id).status == "IN_PROGRESS"
    assert user.rights == (True, "driver", False)


def test_an_accept_is_made_with_rights_gained_since_the_socket_read_them(
    make_user, rider, make_trip
):
    driver = make_user("driver")  # not approved when the socket read them
    trip = make_trip(rider)
    rights_become(driver, driver_approved_at=timezone.now())

    user, _ = executed(driver, AcceptTrip("trip.accept", trip.id))

    assert Trip.objects.get(id=trip.id).driver_id == driver.id
    assert user.is_approved_driver


def test_a_refusal_the_rights_do_not_explain_stands(approved_driver, make_user, rider, make_trip):
    trip = make_trip(rider, status="STARTED", driver=make_user("driver"))
    before = trip_rows()

    assert isinstance(
        refused(approved_driver, AcceptTrip("trip.accept", trip.id)), errors.TripNotAvailable
    )
    assert trip_rows() == before


def test_a_request_is_refused_to_a_rider_made_a_driver_since_the_socket_read_them(make_user):
    driver_now = make_user("rider")
    rights_become(driver_now, role="driver")

    assert isinstance(
        refused(driver_now, RequestTrip("trip.request", ADDRESSES)), errors.RoleRequired
    )
    assert trip_rows() == []


def test_a_request_reads_no_user_when_it_is_made(rider, django_assert_num_queries):
    # The insert tests the rider's rights itself.
    with django_assert_num_queries(1):
        user, jobs = executed(rider, RequestTrip("trip.request", ADDRESSES))

    assert user is rider
    assert [trip.rider_id for trip in Trip.objects.all()] == [rider.id]
    assert jobs  # its events


def test_a_deactivated_rider_s_retried_request_ends_their_session_unanswered(rider):
    executed(rider, RequestTrip("trip.request", ADDRESSES, request_id="r-1"))
    before = trip_rows()
    rights_become(rider, is_active=False)

    refusal = refused(rider, RequestTrip("trip.request", ADDRESSES, request_id="r-1"))

    assert isinstance(refusal, SessionEnded)
    assert trip_rows() == before


def test_a_deactivated_rider_s_request_ends_their_session_and_makes_no_trip(rider):
    rights_become(rider, is_active=False)

    assert isinstance(refused(rider, RequestTrip("trip.request", ADDRESSES)), SessionEnded)
    assert trip_rows() == []


def cancel(trip: Trip) -> CancelTrip:
    return CancelTrip("trip.cancel", trip.id)


def test_a_riders_cancel_of_their_request_reads_no_user(
    rider, make_trip, django_assert_num_queries
):
    trip = make_trip(rider)

    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 4):
        user, jobs = executed(rider, cancel(trip))

    assert user is rider
    assert Trip.objects.get(id=trip.id).status == "CANCELED"
    assert jobs  # its events


@pytest.mark.parametrize("status", ["REQUESTED", "STARTED"])
def test_a_deactivated_riders_cancel_ends_their_session_and_changes_nothing(
    rider, approved_driver, make_trip, status
):
    driver = approved_driver if status == "STARTED" else None
    trip = make_trip(rider, status=status, driver=driver)
    rights_become(rider, is_active=False)
    before = trip_rows()

    assert isinstance(refused(rider, cancel(trip)), SessionEnded)
    assert trip_rows() == before


def test_a_rider_made_a_driver_since_still_cancels_their_request(rider, make_trip):
    # A cancel asks no role of its user; their rights are those they have now.
    trip = make_trip(rider)
    rights_become(rider, role="driver")

    user, jobs = executed(rider, cancel(trip))

    assert Trip.objects.get(id=trip.id).status == "CANCELED"
    assert user.rights == (True, "driver", False)
    assert jobs


def test_a_cancel_of_another_riders_trip_is_refused_and_changes_nothing(
    rider, make_user, make_trip
):
    trip = make_trip(make_user("rider"))
    before = trip_rows()

    assert isinstance(refused(rider, cancel(trip)), errors.TripNotFound)
    assert trip_rows() == before


@pytest.fixture
def user_not_read_again(monkeypatch):
    def read(user_id):
        raise AssertionError("the user was read again")

    monkeypatch.setattr("realtime.commands.acting_user", read)


def test_a_request_refused_once_the_rights_were_confirmed_reads_no_user(
    rider, make_trip, user_not_read_again
):
    make_trip(rider)
    before = trip_rows()

    refusal = refused(rider, RequestTrip("trip.request", ADDRESSES))

    assert isinstance(refusal, errors.RiderHasActiveTrip)
    assert trip_rows() == before


def test_a_cancel_refused_once_the_rights_were_confirmed_reads_no_user(
    rider, approved_driver, make_trip, user_not_read_again
):
    trip = make_trip(rider, status="IN_PROGRESS", driver=approved_driver)
    before = trip_rows()

    assert isinstance(refused(rider, cancel(trip)), errors.StatusOutOfOrder)
    assert trip_rows() == before
