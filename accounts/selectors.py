from accounts.models import User
from config.composed_reads import ComposedRead

_by_id = ComposedRead(User, alias="u", where="u.id = %s", params=[User._meta.pk])
_active_by_id = ComposedRead(
    User, alias="u", where="u.id = %s AND u.is_active", params=[User._meta.pk]
)


def user_by_id(user_id) -> User | None:
    """The user, active or not: every request with a token reads its user."""
    return _by_id.first(user_id)


def user_active(user_id) -> User | None:
    """The user, if they still exist and are active: sockets ask on every request they
    carry out, since rights are checked against the database as it is now."""
    return _active_by_id.first(user_id)
