"""The statements whose plans PostgreSQL keeps.

Planning a trip step's statement took PostgreSQL longer than carrying it out: of its
0.3 ms of CPU a statement, more than half (docs/benchmarks.md, finding 48). A statement
marked here is prepared by each connection the first time it runs it, and planned
again only when PostgreSQL's kept plan would cost more than planning it anew. Nothing
else is prepared: a plan kept for any values is only as good as its statement lets it
be, so only statements written for it are marked.

A rollback makes a connection forget what it prepared (psycopg deallocates it all, as
a dropped table could otherwise leave a plan behind): a refused cancel, say, costs the
next run of each statement on that connection one plan more.

A connection's first run of a statement costs more than its plan: an accept's first on
a connection took PostgreSQL 3.4 ms against 0.24 at the median, and a fresh process's
connections all run their first steps together, under load (docs/benchmarks.md,
finding 103). So the sockets' hottest statements are run once more, against no row,
on each connection a process keeps before it serves (`plans_prepared`, run by
`realtime.database.kept_connections_prepared`).
"""

from collections.abc import Callable

_marked: set[str] = set()


def plan_kept(sql: str) -> str:
    """Mark `sql`, the exact text a cursor will run, for each connection to prepare; give
    it back.

    Its parameters must be the values that differ from one run to the next (a trip's
    id, a user's, what is written): a condition that is the same on every run, such as
    the statuses of an active trip, is written into the statement, where the planner
    can see it. Passed as a parameter instead, the kept plan knows nothing of it and
    may read a whole index (finding 48).
    """
    _marked.add(sql)
    return sql


def is_plan_kept(sql) -> bool:
    return sql in _marked


_warm_ups: list[Callable[[], None]] = []


def warmed_by(warm_up: Callable[[], None]) -> Callable[[], None]:
    """Register `warm_up`: it runs marked statements as their callers do, against no
    row, and changes nothing."""
    _warm_ups.append(warm_up)
    return warm_up


def plans_prepared() -> None:
    """Every registered warm-up, on the calling context's connection: the statements
    they run are prepared on it, and its backend has read what they read."""
    for warm_up in _warm_ups:
        warm_up()
