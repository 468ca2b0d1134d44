"""Reads on hot paths whose SQL is composed once, not compiled by the ORM on each call.

The ORM compiles a queryset's SQL every time it runs it. For a trip with its rider and
driver that is about a millisecond of CPU, several times what the database takes to
answer, and every trip step and every socket's handshake pays it (docs/benchmarks.md,
finding 25). A `ComposedRead` writes its SELECT once per database backend from the
models' own metadata, so it follows their columns, and gives back the instances the
ORM would: every concrete field loaded, the backend's converters applied, the related
objects cached as `select_related` caches them.
"""

from collections.abc import Sequence
from typing import Generic, TypeVar

from django.db import connection
from django.db.models import Field, Model
from django.db.models.expressions import Col

from config.postgresql.kept_plans import plan_kept

M = TypeVar("M", bound=Model)


class _ComposedPerBackend:
    """A read composed on first use (the models' relations are resolved by then), once
    for each database backend it is used with, by its own `_compose`."""

    def __init__(self):
        self._composed: dict = {}

    def _composed_for_backend(self):
        composed = self._composed.get(connection.vendor)
        if composed is None:
            composed = self._composed[connection.vendor] = self._compose()
        return composed


class ComposedRead(_ComposedPerBackend, Generic[M]):
    """`SELECT` of `model`'s rows (as `alias`) and, for each foreign key named in
    `related` (field name to alias), the row it points to.

    `where` is SQL written against those aliases, with a `%s` for each of `params`,
    the fields whose values fill them in order: each value is made ready for the
    database as that field makes its own. It is a constant of the code, never built
    from input.

    With `changed_by`, an `UPDATE` of the model's table (its `%s` first among
    `params`), the rows read are the rows it changed, as they are after it, in the same
    statement: PostgreSQL's data-modifying `WITH`, which no other backend here has.
    """

    def __init__(
        self,
        model: type[M],
        *,
        alias: str,
        params: Sequence[Field],
        where: str | None = None,
        related: dict[str, str] | None = None,
        changed_by: str | None = None,
    ):
        self.model = model
        self.alias = alias
        self.where = where
        self.changed_by = changed_by
        self.params = tuple(params)
        self.related = [(model._meta.get_field(name), as_) for name, as_ in (related or {}).items()]
        super().__init__()

    def __call__(self, *values) -> list[M]:
        composed = self._composed_for_backend()
        with connection.cursor() as cursor:
            cursor.execute(composed.sql, prepared(self.params, values))
            rows = cursor.fetchall()
        return [composed.instance(row) for row in rows]

    def first(self, *values) -> M | None:
        found = self(*values)
        return found[0] if found else None

    def tables(self) -> list["_Table"]:
        """The model's table and each related one, in the order of a row's columns."""
        return [_Table(None, self.model, self.alias)] + [
            _Table(field, field.related_model, as_) for field, as_ in self.related
        ]

    def joins(self, *, outer: bool = False) -> list[str]:
        """The related rows' joins; all outer ones, for `outer`."""
        return [join(self.alias, field, as_, outer=outer) for field, as_ in self.related]

    def _compose(self) -> "_Composed":
        quote = connection.ops.quote_name
        tables = self.tables()
        columns = _columns(tables)
        if self.changed_by:
            changed, source = [f"WITH {self.alias} AS ({self.changed_by} RETURNING *)"], self.alias
        else:
            changed, source = [], f"{quote(self.model._meta.db_table)} AS {self.alias}"
        sql = " ".join(
            [
                *changed,
                f"SELECT {', '.join(column_sql(column) for column in columns)}",
                f"FROM {source}",
                *self.joins(),
                *([f"WHERE {self.where}"] if self.where else []),
            ]
        )
        return _Composed(plan_kept(sql), converters_of(columns), tables)


L = TypeVar("L", bound=Model)


class LeadRead(_ComposedPerBackend, Generic[L, M]):
    """A row of `lead` (as `alias`) by its primary key and, in the same statement, the
    rows of `follows` (a `ComposedRead`, with its related rows) that `on` joins to it:
    the lead's instance, or None if there is no such row, and the others' instances.
    The lead is read whether any row joins it or none does.

    `on` is SQL against both reads' aliases, a constant of the code with no `%s`;
    `follows`' own condition and parameters are not used.
    """

    def __init__(self, lead: type[L], *, alias: str, follows: ComposedRead[M], on: str):
        self.lead = lead
        self.alias = alias
        self.follows = follows
        self.on = on
        super().__init__()

    def __call__(self, pk) -> tuple[L | None, list[M]]:
        sql, lead, follows = self._composed_for_backend()
        with connection.cursor() as cursor:
            cursor.execute(sql, prepared([self.lead._meta.pk], [pk]))
            rows = cursor.fetchall()
        if not rows:
            return None, []
        width = lead.tables[0].width
        followed_pk = width + follows.tables[0].pk_index
        return lead.instance(rows[0][:width]), [
            follows.instance(row[width:]) for row in rows if row[followed_pk] is not None
        ]

    def _compose(self) -> tuple[str, "_Composed", "_Composed"]:
        quote = connection.ops.quote_name
        lead_tables = [_Table(None, self.lead, self.alias)]
        follows_tables = self.follows.tables()
        lead_columns, follows_columns = _columns(lead_tables), _columns(follows_tables)
        followed = self.follows.model._meta.db_table
        sql = " ".join(
            [
                f"SELECT {', '.join(map(column_sql, lead_columns + follows_columns))}",
                f"FROM {quote(self.lead._meta.db_table)} AS {self.alias}",
                f"LEFT JOIN {quote(followed)} AS {self.follows.alias} ON {self.on}",
                # Outer joins all: a lead that nothing follows has NULLs in their place.
                *self.follows.joins(outer=True),
                f"WHERE {self.alias}.{quote(self.lead._meta.pk.column)} = %s",
            ]
        )
        sql = plan_kept(sql)
        return (
            sql,
            _Composed(sql, converters_of(lead_columns), lead_tables),
            _Composed(sql, converters_of(follows_columns), follows_tables),
        )


def prepared(fields: Sequence[Field], values: Sequence) -> list:
    """`values` made ready for the database, each as its field in `fields` makes its own."""
    return [
        field.get_db_prep_value(value, connection)
        for field, value in zip(fields, values, strict=True)
    ]


def text_literal(value: str) -> str:
    """`value` as an SQL string literal, for a constant that a statement's kept plan
    must know (config/postgresql/kept_plans.py)."""
    return "'" + value.replace("'", "''") + "'"


def column_sql(column: Col) -> str:
    return f"{column.alias}.{connection.ops.quote_name(column.target.column)}"


def join(alias: str, field: Field, as_: str, *, outer: bool = False) -> str:
    """The join from the table `alias` through its foreign key `field` to the row it
    points to, as `as_`: an outer join where the key may be null, or if `outer`."""
    quote = connection.ops.quote_name
    return (
        f"{'LEFT ' if field.null or outer else ''}JOIN {quote(field.related_model._meta.db_table)} "
        f"AS {as_} ON {as_}.{quote(field.target_field.column)} = {alias}.{quote(field.column)}"
    )


def _columns(tables: Sequence["_Table"]) -> list[Col]:
    return [
        Col(table.alias, field) for table in tables for field in table.model._meta.concrete_fields
    ]


def converters_of(columns: Sequence[Col]) -> list[tuple[int, Col, list]]:
    """The position, column and converters of each of `columns` that the backend or
    its field converts on reading, as the ORM would apply them."""
    found = []
    for index, column in enumerate(columns):
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            found.append((index, column, functions))
    return found


def converted(row: Sequence, converters: list[tuple[int, Col, list]]) -> list:
    """`row`'s values as the ORM would read them."""
    values = list(row)
    for index, column, functions in converters:
        for convert in functions:
            values[index] = convert(values[index], column, connection)
    return values


class _Table:
    """One model's columns in a composed row: the main model's, or those of the row a
    foreign key (`via`) points to."""

    def __init__(self, via: Field | None, model: type[Model], alias: str):
        self.via = via
        self.model = model
        self.alias = alias
        fields = model._meta.concrete_fields
        self.width = len(fields)
        self.attnames = [field.attname for field in fields]
        self.pk_index = fields.index(model._meta.pk)

    def instance(self, values: list) -> Model | None:
        if values[self.pk_index] is None:  # an outer join that found no row
            return None
        return self.model.from_db(connection.alias, self.attnames, values)


class _Composed:
    """A read as composed for one backend: its SQL, the columns its converters apply
    to, and the tables its rows are cut into."""

    def __init__(self, sql: str, converters: list, tables: list[_Table]):
        self.sql = sql
        self.converters = converters
        self.tables = tables

    def instance(self, row) -> Model:
        values = converted(row, self.converters)
        main, *related = self.tables
        instance = main.instance(values[: main.width])
        start = main.width
        for table in related:
            end = start + table.width
            table.via.set_cached_value(instance, table.instance(values[start:end]))
            start = end
        return instance
