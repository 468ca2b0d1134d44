import pytest

from accounts.selectors import user_active

pytestmark = pytest.mark.django_db


def test_an_active_user_reads_as_the_orm_reads_them(rider):
    found = user_active(rider.id)

    assert [getattr(found, field.attname) for field in found._meta.concrete_fields] == [
        getattr(rider, field.attname) for field in rider._meta.concrete_fields
    ]
    assert found.check_password("correct-horse-battery")


def test_a_deactivated_or_deleted_user_reads_as_none(make_user):
    gone, deactivated = make_user("rider"), make_user("driver", is_active=False)
    gone_id = gone.id
    gone.delete()

    assert user_active(deactivated.id) is None
    assert user_active(gone_id) is None
