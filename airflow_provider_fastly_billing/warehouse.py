"""
Loading invoice frames into any SQL warehouse behind an Airflow connection, all or nothing.

:func:`load_frames` creates missing tables with exact types for the dialect, then in ONE transaction
deletes the rows of the loads being written and inserts the new ones: re-running a month replaces it,
and a failure anywhere leaves the warehouse as it was. DuckDB ingests the DataFrames directly,
PostgreSQL takes them through ``COPY``, any other DB-API connection through batched ``executemany``.
This module imports pandas; DAG files should import it only inside tasks.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import re
from typing import TYPE_CHECKING, Any

import pandas as pd
from airflow.sdk import BaseHook

from airflow_provider_fastly_billing.frames import SCHEMA

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow_provider_fastly_billing.frames import InvoiceFrames

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)
BATCH_ROWS = 10_000
COPY_ROWS = 100_000
KEY_BATCH = 500
NULL = "\\N"
TYPES = {
    "duckdb": {"string": "VARCHAR", "json": "VARCHAR", "numeric": "DECIMAL(38, 15)", "int": "BIGINT",
               "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"},
    "postgres": {"string": "TEXT", "json": "TEXT", "numeric": "NUMERIC", "int": "BIGINT", "bool": "BOOLEAN",
                 "timestamp": "TIMESTAMPTZ"},
    # SQLite has no exact decimal type: money is stored as text with its exact digits.
    "sqlite": {"string": "TEXT", "json": "TEXT", "numeric": "TEXT", "int": "INTEGER", "bool": "INTEGER",
               "timestamp": "TEXT"},
    "other": {"string": "VARCHAR(4000)", "json": "TEXT", "numeric": "DECIMAL(38, 15)", "int": "BIGINT",
              "bool": "BOOLEAN", "timestamp": "TIMESTAMP"},
}  # fmt: skip


def check_identifier(value: str | None, what: str) -> None:
    """Refuse a schema or table prefix that is not a plain SQL identifier (no quoting, no injection)."""
    if value is not None and not (IDENTIFIER.fullmatch(value) or (what == "table_prefix" and value == "")):
        raise ValueError(f"{what} must be letters, digits and underscores (not starting with a digit), got {value!r}")


def _driver(conn: Any) -> str:
    return type(conn).__module__.split(".")[0].lstrip("_")


def dialect_of(conn: Any) -> str:
    """``duckdb``, ``postgres``, ``sqlite`` or ``other``, from the DB-API connection's driver."""
    dialects = {"duckdb": "duckdb", "psycopg2": "postgres", "psycopg": "postgres", "sqlite3": "sqlite"}
    return dialects.get(_driver(conn), "other")


def _placeholder(conn: Any) -> str:
    module = importlib.import_module(_driver(conn))
    return "?" if getattr(module, "paramstyle", "qmark") == "qmark" else "%s"


class Target:
    """Where and how to write: the connection, its dialect and the qualified table names."""

    def __init__(self, conn: Any, schema: str | None, table_prefix: str) -> None:
        self.conn = conn
        self.dialect = dialect_of(conn)
        self.schema = schema
        self.placeholder = _placeholder(conn)
        self.tables = {name: f"{schema + '.' if schema else ''}{table_prefix}{name}" for name in SCHEMA}
        # A DuckDB cursor is a second connection with its own transaction: use the connection itself.
        self.cursor = conn if self.dialect == "duckdb" else conn.cursor()

    def create_tables(self) -> None:
        """Create the schema and any missing table; committed on its own, before the data."""
        cursor = self.cursor
        if self.schema and self.dialect in ("duckdb", "postgres"):
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        types = TYPES[self.dialect]
        for name, columns in SCHEMA.items():
            body = ", ".join(f"{column} {types[kind]}" for column, kind in columns.items())
            key = ", PRIMARY KEY (load_key)" if name == "invoices" else ""
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.tables[name]} ({body}{key})")
        self.conn.commit()

    def delete(self, load_keys: Sequence[str]) -> None:
        cursor = self.cursor
        for start in range(0, len(load_keys), KEY_BATCH):
            batch = list(load_keys[start : start + KEY_BATCH])
            marks = ", ".join([self.placeholder] * len(batch))
            for table in self.tables.values():
                cursor.execute(f"DELETE FROM {table} WHERE load_key IN ({marks})", batch)

    def insert(self, name: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        {"duckdb": self._insert_duckdb, "postgres": self._insert_copy}.get(self.dialect, self._insert_rows)(name, frame)

    def _insert_duckdb(self, name: str, frame: pd.DataFrame) -> None:
        types = TYPES["duckdb"]
        select = ", ".join(f"CAST({c} AS {types[k]})" for c, k in SCHEMA[name].items())
        self.conn.from_df(_decimals_as_text(frame, name)).project(select).insert_into(self.tables[name])

    def _insert_copy(self, name: str, frame: pd.DataFrame) -> None:
        sql = f"COPY {self.tables[name]} ({', '.join(SCHEMA[name])}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')"
        cursor = self.cursor
        for start in range(0, len(frame), COPY_ROWS):
            text = frame.iloc[start : start + COPY_ROWS].to_csv(
                index=False, header=False, na_rep=NULL, quoting=csv.QUOTE_MINIMAL, date_format="%Y-%m-%dT%H:%M:%S.%f%z"
            )
            if hasattr(cursor, "copy_expert"):
                cursor.copy_expert(sql, io.StringIO(text))
            else:
                with cursor.copy(sql) as copy:
                    copy.write(text)

    def _insert_rows(self, name: str, frame: pd.DataFrame) -> None:
        columns = list(SCHEMA[name])
        marks = ", ".join([self.placeholder] * len(columns))
        sql = f"INSERT INTO {self.tables[name]} ({', '.join(columns)}) VALUES ({marks})"
        cursor = self.cursor
        for batch in _row_batches(frame, name, text_money=self.dialect == "sqlite"):
            cursor.executemany(sql, batch)


def _decimals_as_text(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A copy with Decimal columns as exact strings, for engines that would read them as floats."""
    numeric = [c for c, kind in SCHEMA[name].items() if kind == "numeric"]
    return frame.assign(**{c: [None if v is None else str(v) for v in frame[c]] for c in numeric})


def _row_batches(frame: pd.DataFrame, name: str, *, text_money: bool) -> Iterator[list[tuple]]:
    """Rows as DB-API parameters: nulls as ``None``, timestamps as datetimes or ISO text."""
    kinds = SCHEMA[name]
    converted: dict[str, list[Any]] = {}
    for column, kind in kinds.items():
        series = frame[column]
        if kind == "timestamp":
            values = [None if v is None or v != v else v.to_pydatetime() for v in series.astype(object)]
            converted[column] = [None if v is None else v.isoformat() for v in values] if text_money else values
        elif kind in ("int", "bool"):
            cast = int if kind == "int" else bool
            converted[column] = [None if v is pd.NA else cast(v) for v in series.astype(object)]
        elif kind == "numeric" and text_money:
            converted[column] = [None if v is None else str(v) for v in series]
        else:
            converted[column] = list(series)
    rows = list(zip(*converted.values(), strict=False))
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


def load_frames(
    frames: InvoiceFrames, conn_id: str, *, schema: str | None = None, table_prefix: str = "fastly_"
) -> dict[str, int]:
    """
    Write ``frames`` into the warehouse of ``conn_id``, replacing the loads they hold; return rows per table.

    :param frames: the tables, from :func:`~airflow_provider_fastly_billing.frames.invoice_to_frames`.
    :param conn_id: an Airflow connection whose hook is a common-sql ``DbApiHook`` (DuckDB, PostgreSQL,
        SQLite, or any other).
    :param schema: the schema to write into; default the connection's.
    :param table_prefix: prefix of the four table names (``fastly_invoices``...).
    """
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    check_identifier(schema, "schema")
    check_identifier(table_prefix, "table_prefix")
    hook = BaseHook.get_hook(conn_id)
    if not isinstance(hook, DbApiHook):
        raise TypeError(f"connection {conn_id!r} is not a SQL database connection ({type(hook).__name__})")
    conn = hook.get_conn()
    try:
        target = Target(conn, schema, table_prefix)
        target.create_tables()
        _replace(target, frames)
    finally:
        conn.close()
    return {name: len(frame) for name, frame in frames.tables.items()}


def _replace(target: Target, frames: InvoiceFrames) -> None:
    """Delete the loads' old rows and insert the new ones in one transaction; roll back on any failure."""
    if target.dialect == "duckdb":
        target.conn.begin()
    try:
        target.delete(frames.load_keys)
        for name, frame in frames.tables.items():
            target.insert(name, frame)
        target.conn.commit()
    except BaseException:
        # A dropped connection cannot roll back, but its server already has: keep the original error.
        with contextlib.suppress(Exception):
            target.conn.rollback()
        raise
