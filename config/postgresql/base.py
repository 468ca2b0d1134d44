"""Django's PostgreSQL backend, reading timestamps with psycopg's own loader.

Django registers a timestamp loader of its own on every connection, a subclass of
psycopg's pure-Python one that gives each value the connection's time zone; and so,
even with psycopg's C extension installed, every timestamp was parsed in Python: a
tenth of a trip list request's CPU (docs/benchmarks.md, finding 40). psycopg's fastest
loader (its C one, when installed) gives the same values: it too makes aware times in
the session's time zone, which Django sets to its own on every connection.
"""

import psycopg
from django.db.backends.postgresql import base
from psycopg.pq import Format

_TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid
_FASTEST_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        if self.timezone is not None:  # USE_TZ; without it Django's loader drops the zone
            # On the cursor, not the connection: Django asks the connection's loader
            # which time zone it is for, and psycopg's C loader cannot say. About a
            # microsecond and a half a cursor.
            cursor.adapters.register_loader(_TIMESTAMPTZ, _FASTEST_TIMESTAMPTZ_LOADER)
        return cursor
