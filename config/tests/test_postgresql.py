"""taxi's PostgreSQL backend reads timestamps with psycopg's fastest loader, and reads
them as Django's own loader does; it prepares the statements marked to keep their
plans, and no other."""

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader, register_tzloader
from psycopg.pq import Format

from config.postgresql.kept_plans import plan_kept

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid
TIMES = [
    "2024-03-10 12:34:56.789012+05:30",
    "1999-12-31 23:59:59+00",
    "2030-06-01 00:00:00.000001-07",
    None,
]
SELECT = "SELECT " + ", ".join(["CAST(%s AS timestamptz)"] * len(TIMES))


def test_timestamps_are_read_by_psycopg_s_fastest_loader():
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)

    assert issubclass(loader, psycopg.adapters.get_loader(TIMESTAMPTZ, Format.TEXT))
    assert not issubclass(loader, BaseTzLoader)


def test_timestamps_read_as_django_s_own_loader_reads_them():
    with connection.cursor() as cursor:
        cursor.execute(SELECT, TIMES)
        read = cursor.fetchone()
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute(SELECT, TIMES)
        read_by_django_s = cursor.fetchone()

    assert read == read_by_django_s
    assert [time and time.tzinfo for time in read] == [
        time and time.tzinfo for time in read_by_django_s
    ]
    assert read[0].tzinfo is not None and read[0].microsecond == 789012


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def test_a_statement_marked_to_keep_its_plan_is_prepared_on_its_first_run():
    marked = plan_kept("SELECT CAST(%s AS integer) /* marked to keep its plan */")

    with connection.cursor() as cursor:
        cursor.execute(marked, [1])
        assert cursor.fetchone() == (1,)

    assert [s for s in prepared_statements() if "marked to keep its plan" in s] != []


def test_no_other_statement_is_prepared_however_often_it_runs():
    with connection.cursor() as cursor:
        for number in range(10):
            cursor.execute("SELECT CAST(%s AS integer) /* not marked */", [number])
            assert cursor.fetchone() == (number,)

    assert [s for s in prepared_statements() if "not marked" in s] == []
