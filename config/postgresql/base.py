"""Django's PostgreSQL backend, reading timestamps with psycopg's own loader.

Django registers a timestamp loader of its own on every connection, a subclass of
psycopg's pure-Python one that gives each value the connection's time zone; and so,
even with psycopg's C extension installed, every timestamp was parsed in Python: a
tenth of a trip list request's CPU (docs/benchmarks.md, finding 40). psycopg's fastest
loader (its C one, when installed) gives the same values: it too makes aware times in
the session's time zone, which Django sets to its own on every connection.

With server-side binding on (DATABASE_PREPARED_STATEMENTS, the default), its cursor
prepares the statements marked to keep their plans (`config.postgresql.kept_plans`).
"""

import psycopg
from django.db.backends.postgresql import base
from psycopg.pq import Format

from config.postgresql.kept_plans import is_plan_kept

_TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid
_FASTEST_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)


class _PlanKeepingCursor(base.ServerBindingCursor):
    """Django's cursor for server-side binding, which prepares just the statements
    marked with `plan_kept`."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=is_plan_kept(query), binary=binary)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if params["cursor_factory"] is base.ServerBindingCursor:
            params["cursor_factory"] = _PlanKeepingCursor
        return params

    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        if self.timezone is not None:  # USE_TZ; without it Django's loader drops the zone
            # On the cursor, not the connection: Django asks the connection's loader
            # which time zone it is for, and psycopg's C loader cannot say. About a
            # microsecond and a half a cursor.
            cursor.adapters.register_loader(_TIMESTAMPTZ, _FASTEST_TIMESTAMPTZ_LOADER)
        return cursor
