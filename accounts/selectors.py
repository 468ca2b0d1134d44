from django.db import connection, models

from accounts.models import User
from config.composed_reads import ComposedRead, prepared

_by_id = ComposedRead(User, alias="u", where="u.id = %s", params=[User._meta.pk])
_active_by_id = ComposedRead(
    User, alias="u", where="u.id = %s AND u.is_active", params=[User._meta.pk]
)


def user_by_id(user_id) -> User | None:
    """The user, active or not: every request with a token reads its user."""
    return _by_id.first(user_id)


def user_active(user_id) -> User | None:
    """The user, if they still exist and are active: a socket asks before each command
    whose own statement does not test the user's rights (see `rights_held`), since
    rights are checked against the database as it is now."""
    return _active_by_id.first(user_id)


def role_held() -> str:
    """SQL that is true while the user whose id is its first `%s` exists, is active and
    has the role its second names: a read for a user known only by a token's claims
    confirms them with it, in the same statement."""
    quote = connection.ops.quote_name
    user_id, is_active, role = (
        quote(User._meta.get_field(name).column) for name in ("id", "is_active", "role")
    )
    return (
        f"EXISTS (SELECT 1 FROM {quote(User._meta.db_table)} AS holder "
        f"WHERE holder.{user_id} = %s AND holder.{is_active} AND holder.{role} = %s)"
    )


def user_holds_role(user_id, role: str) -> bool:
    """Whether the user exists, is active and has `role`, as `role_held` says; the
    values as the database has them (`config.composed_reads.prepared`)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {role_held()}", [user_id, role])
        return cursor.fetchone()[0]


# A write made for a user can carry this condition, so that it holds only while the
# user still has the rights the caller read them with (`User.rights`), as one statement:
# a `%s` for each of `RIGHTS_PARAMS`, whose values `rights_held_values` gives.
RIGHTS_PARAMS = (User._meta.pk, User._meta.get_field("role"), models.BooleanField())


def rights_held() -> str:
    """The condition's SQL, for the database in use."""
    quote = connection.ops.quote_name
    user_id, is_active, role, approved_at = (
        quote(User._meta.get_field(name).column)
        for name in ("id", "is_active", "role", "driver_approved_at")
    )
    return (
        f"EXISTS (SELECT 1 FROM {quote(User._meta.db_table)} AS acting "
        f"WHERE acting.{user_id} = %s AND acting.{is_active} AND acting.{role} = %s "
        f"AND (acting.{approved_at} IS NOT NULL) = %s)"
    )


def rights_held_values(user: User) -> tuple:
    """The condition's values for `user` as the caller read them (an active user)."""
    _, role, approved = user.rights
    return (user.id, role, approved)


def rights_still_held(user: User) -> bool:
    """Whether `user` still has the rights the caller read them with (`rights_held`)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {rights_held()}", prepared(RIGHTS_PARAMS, rights_held_values(user)))
        return bool(cursor.fetchone()[0])
