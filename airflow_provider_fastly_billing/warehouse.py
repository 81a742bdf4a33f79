"""
Loading invoice frames, and the tables derived from them, into any SQL warehouse behind an Airflow connection.

Every table the provider writes is one entry of :data:`TABLES` (name -> columns and kinds, the columns
that make an existing table ours, its primary key). A load is data too: for each table it writes, the
rows (:class:`Rows`) and the load keys whose old rows they replace. :class:`Load` is the one code path
of a load's transaction, written in one part or many; :func:`load_tables` writes any such set in one go;
:func:`load_frames` is the invoice load (its four tables, and ``focus`` on request).

:func:`load_frames` writes through one small :class:`Dialect` per engine, chosen from the DB-API driver
behind the connection (:data:`DIALECTS`): DuckDB, PostgreSQL, SQLite, MySQL/MariaDB, and a generic class
for any other DB-API connection. Every load runs the same steps:

1. wait for the other loads of the same tables (DuckDB: its file lock; PostgreSQL: an advisory lock;
   SQLite: ``BEGIN IMMEDIATE``; MySQL/MariaDB: ``GET_LOCK``), bounded by ``lock_timeout``;
2. check that existing tables of our names are ours (they have the key columns), before anything is
   created, so a colliding ``table_prefix`` fails naming the table and leaves nothing behind;
3. create the missing tables and add our missing columns to older ones (columns users added stay);
4. delete the rows of the loads being written and insert the new ones BY COLUMN NAME, then commit.

Where the engine has transactional DDL (DuckDB, PostgreSQL, SQLite) all of it is one transaction; MySQL
commits DDL implicitly, so there the tables change first and the data follows in its own transaction. A
failure anywhere leaves the data as it was. This module imports pandas; DAG files should import it only
inside tasks.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from airflow.sdk import BaseHook

from airflow_provider_fastly_billing.allocation import SCHEMA as ALLOCATION_SCHEMA
from airflow_provider_fastly_billing.allocation import allocate
from airflow_provider_fastly_billing.focus import TABLE_SCHEMA as FOCUS_SCHEMA
from airflow_provider_fastly_billing.focus import FocusError, to_focus_table
from airflow_provider_fastly_billing.frames import (
    KEY,
    MONEY,
    NUMERIC_PRECISION,
    NUMERIC_SCALE,
    _all_fit,
    _misfit,
    to_python,
)
from airflow_provider_fastly_billing.frames import SCHEMA as INVOICE_SCHEMA
from airflow_provider_fastly_billing.usage import SCHEMA as USAGE_SCHEMA
from airflow_provider_fastly_billing.usage import load_key as usage_load_key

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from airflow_provider_fastly_billing.frames import InvoiceFrames


log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)
BATCH_ROWS = 50_000
COPY_ROWS = 10_000
"""Rows per CSV batch of a PostgreSQL ``COPY`` (about 5 MB of line items): the first is sent soon, memory stays flat."""
COPY_READ = 1 << 20
"""Bytes psycopg2 asks for per read of a ``COPY``'s data (its default, 8 KB, costs a Python call per 8 KB)."""
KEY_BATCH = 500
LOCK_TIMEOUT = 600.0
"""Seconds a load waits for other loads of the same warehouse before it fails (default 10 minutes)."""
CREATION_GRACE = 10.0
"""Seconds a new DuckDB file without a valid header counts as being created by another process, not broken."""
_DUCKDB_BEING_CREATED = re.compile(r'The file "(.+)" exists, but it is not a valid DuckDB database file')


DECIMAL = f"DECIMAL({NUMERIC_PRECISION}, {NUMERIC_SCALE})"


@dataclass(frozen=True)
class Table:
    """
    One warehouse table: its columns and their kinds, the columns that make an existing table of its name ours.

    :param columns: column -> kind (``string``, ``json``, ``numeric``, ``int``, ``bool``, ``timestamp``).
    :param key: columns an existing table must have to be written into (and typed as keys).
    :param primary_key: the column that is the table's primary key, if any.
    """

    columns: Mapping[str, str]
    key: tuple[str, ...] = tuple(KEY)
    primary_key: str | None = None


USAGE_KEY = ("load_key", "customer_id", "month")
TABLES: dict[str, Table] = {
    **{
        name: Table(columns, primary_key="load_key" if name == "invoices" else None)
        for name, columns in INVOICE_SCHEMA.items()
    },
    "focus": Table(FOCUS_SCHEMA),
    **{name: Table(columns, USAGE_KEY) for name, columns in USAGE_SCHEMA.items()},
    **{name: Table(columns) for name, columns in ALLOCATION_SCHEMA.items()},
}
"""Every table the provider writes, by name without prefix: invoice tables (keyed by the invoice's
``load_key``), ``focus`` and ``service_costs`` (the invoice's ``load_key`` too), the usage tables
(``usage/<customer>/<month>``)."""
SCHEMA: dict[str, Mapping[str, str]] = {name: table.columns for name, table in TABLES.items()}
"""Columns and kinds of every table of :data:`TABLES`."""
INVOICE_TABLES = tuple(INVOICE_SCHEMA)
"""The four invoice tables: what :func:`load_frames` writes without ``focus``."""
SERVICE_COST_TABLES = ("usage", "service_usage", "service_costs")
"""What :func:`service_cost_tables` writes."""
KEY_COLUMNS = frozenset(column for table in TABLES.values() for column in table.key)


class Rows(NamedTuple):
    """One table's part of a load: its new rows and the load keys whose old rows they replace."""

    frame: pd.DataFrame
    load_keys: Sequence[str]


def check_identifier(value: str | None, what: str) -> None:
    """Refuse a schema or table prefix that is not a plain SQL identifier (no quoting, no injection)."""
    if value is not None and not (IDENTIFIER.fullmatch(value) or (what == "table_prefix" and value == "")):
        raise ValueError(f"{what} must be letters, digits and underscores (not starting with a digit), got {value!r}")


def _driver(obj: Any) -> str:
    """The top-level module of the DB-API driver an object (connection or exception) comes from."""
    return type(obj).__module__.split(".")[0].lstrip("_")


def _lock_key(*parts: str) -> bytes:
    return hashlib.blake2b(" ".join(("airflow_provider_fastly_billing", *parts)).encode(), digest_size=16).digest()


def _lock_id(key: bytes) -> int:
    return int.from_bytes(key[:8], "big", signed=True)


class Tables:
    """The qualified table names of one ``schema`` and ``table_prefix``."""

    def __init__(self, schema: str | None, prefix: str) -> None:
        self.schema, self.prefix = schema, prefix

    def name(self, table: str) -> str:
        return f"{self.prefix}{table}"

    def qualified(self, table: str) -> str:
        return f"{self.schema + '.' if self.schema else ''}{self.prefix}{table}"

    def lock_key(self) -> bytes:
        """The same bytes for every load into this schema and prefix, whichever tables it writes."""
        return _lock_key(*sorted(self.qualified(t).lower() for t in SCHEMA))

    def lock_id(self) -> int:
        """:meth:`lock_key` as a PostgreSQL advisory lock id (a signed 64-bit integer)."""
        return _lock_id(self.lock_key())

    def lock_name(self) -> str:
        """:meth:`lock_key` as a MySQL ``GET_LOCK`` name (at most 64 characters)."""
        return f"fastly_billing_{self.lock_key().hex()}"


class Params:
    """Placeholders and parameters in the driver's own DB-API ``paramstyle``."""

    MARKS: ClassVar[dict[str, str]] = {
        "qmark": "?",
        "format": "%s",
        "numeric": ":{n}",
        "named": ":p{i}",
        "pyformat": "%(p{i})s",
    }
    FROM_HOOK: ClassVar[dict[str, str]] = {"?": "qmark", "%s": "format"}

    def __init__(self, style: str) -> None:
        if style not in self.MARKS:
            raise TypeError(f"unsupported DB-API paramstyle {style!r}")
        self.style = style
        self.named = style in ("named", "pyformat")

    @classmethod
    def of(cls, hook: Any, conn: Any) -> Params:
        """The driver's ``paramstyle`` (the module of its connection class, or a parent package's), else the hook's."""
        path = type(conn).__module__.split(".")
        for end in range(len(path), 0, -1):
            with contextlib.suppress(ImportError):
                style = getattr(importlib.import_module(".".join(path[:end])), "paramstyle", None)
                if style:
                    return cls(style)
        placeholder = getattr(hook, "placeholder", None)
        if placeholder not in cls.FROM_HOOK:
            raise TypeError(
                f"cannot tell the placeholder of {type(conn).__module__}: no paramstyle, hook says {placeholder!r}"
            )
        return cls(cls.FROM_HOOK[placeholder])

    def marks(self, count: int) -> str:
        return ", ".join(self.MARKS[self.style].format(i=i, n=i + 1) for i in range(count))

    def bind(self, row: Sequence[Any]) -> Sequence[Any] | dict[str, Any]:
        return {f"p{i}": v for i, v in enumerate(row)} if self.named else tuple(row)


class Dialect:
    """
    Any DB-API connection: portable types, batched ``executemany``, the driver's own placeholder.

    There is no portable lock, so concurrent loads of the same tables through this class may conflict:
    serialize them (an Airflow pool) or add a dialect for the engine.

    :param hook: the connection's common-sql hook, resolved once by :func:`load_frames`.
    :param conn: its open DB-API connection.
    :param tables: the tables to write.
    :param lock_timeout: seconds to wait for other loads of the same tables.
    """

    types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR(255)",
        "string": "VARCHAR(4000)",
        "json": "TEXT",
        "numeric": DECIMAL,
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP",
    }
    creates_schema = False
    current_schema: str | None = None
    """SQL naming the schema unqualified tables land in, to look them up in ``information_schema``."""
    table_options = ""

    def __init__(self, hook: Any, conn: Any, tables: Tables, lock_timeout: float) -> None:
        self.hook, self.conn, self.tables, self.lock_timeout = hook, conn, tables, lock_timeout
        self.params = Params.of(hook, conn)
        self.cursor = self.open_cursor()

    def open_cursor(self) -> Any:
        return self.conn.cursor()

    @classmethod
    def busy(cls, exc: Exception) -> bool:
        """Whether a failed connect means another process holds the database (worth waiting for)."""
        return False

    def begin(self) -> None:
        """Start the load's transaction (DB-API: implicitly, with the first statement)."""

    def lock(self) -> None:
        """Wait, at most ``lock_timeout``, until no other load writes these tables."""

    def release(self) -> None:
        """Release what :meth:`lock` took, when the transaction's end does not."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if params:
            self.cursor.execute(sql, self.params.bind(params))
        else:
            self.cursor.execute(sql)
        return self.cursor

    def columns(self, table: str) -> set[str]:
        """The lower-case column names of an existing table; empty when there is none."""
        where, values = ["LOWER(table_name) = LOWER({})"], [self.tables.name(table)]
        if self.tables.schema:
            where.append("LOWER(table_schema) = LOWER({})")
            values.append(self.tables.schema)
        elif self.current_schema:
            where.append(f"table_schema = {self.current_schema}")
        marks = self.params.marks(len(values)).split(", ")
        sql = "SELECT column_name FROM information_schema.columns WHERE " + " AND ".join(where).format(*marks)
        return {str(name).lower() for (name,) in self.execute(sql, values).fetchall()}

    def column_type(self, column: str, kind: str) -> str:
        return self.types["key" if column in KEY_COLUMNS else kind]

    def create_table(self, table: str) -> None:
        body = ", ".join(f"{c} {self.column_type(c, kind)}" for c, kind in SCHEMA[table].items())
        primary = TABLES[table].primary_key
        key = f", PRIMARY KEY ({primary})" if primary else ""
        self.execute(f"CREATE TABLE {self.tables.qualified(table)} ({body}{key}){self.table_options}")

    def add_column(self, table: str, column: str) -> None:
        kind = SCHEMA[table][column]
        self.execute(f"ALTER TABLE {self.tables.qualified(table)} ADD COLUMN {column} {self.column_type(column, kind)}")

    def prepare(self, names: Sequence[str]) -> None:
        """Refuse tables of our names that are not ours, then create what is missing; nothing before the check."""
        existing = {table: self.columns(table) for table in names}
        foreign = {
            t: [c for c in TABLES[t].key if c not in cols]
            for t, cols in existing.items()
            if cols and not cols.issuperset(TABLES[t].key)
        }
        if foreign:
            lacks = "; ".join(f"{self.tables.qualified(t)} lacks {', '.join(cols)}" for t, cols in foreign.items())
            raise ValueError(
                f"tables of these names exist but are not this provider's ({lacks}): choose another "
                "table_prefix or schema; nothing was created or written"
            )
        if self.tables.schema and self.creates_schema and not any(existing.values()):
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.tables.schema}")
        for table, columns in existing.items():
            if not columns:
                self.create_table(table)
                continue
            missing = [c for c in SCHEMA[table] if c.lower() not in columns]
            for column in missing:
                self.add_column(table, column)
            if missing:
                log.info("Added columns %s to %s", ", ".join(missing), self.tables.qualified(table))

    def delete(self, table: str, load_keys: Sequence[str]) -> None:
        for start in range(0, len(load_keys), KEY_BATCH):
            batch = list(load_keys[start : start + KEY_BATCH])
            sql = f"DELETE FROM {self.tables.qualified(table)} WHERE load_key IN ({self.params.marks(len(batch))})"
            self.execute(sql, batch)

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        columns = list(SCHEMA[table])
        marks = self.params.marks(len(columns))
        sql = f"INSERT INTO {self.tables.qualified(table)} ({', '.join(columns)}) VALUES ({marks})"
        bind = self.params.bind
        for batch in self.row_batches(table, frame):
            self.cursor.executemany(sql, [bind(row) for row in batch] if self.params.named else batch)

    def timestamps(self, series: pd.Series) -> list[Any]:
        """UTC as naive datetimes: what a TIMESTAMP/DATETIME column holds whatever the session's time zone."""
        return _datetimes(series.dt.tz_convert("UTC").dt.tz_localize(None))

    def money(self, series: pd.Series) -> list[Any]:
        """Exact ``Decimal`` parameters (15 fraction digits), ``None`` for null."""
        return cast("list[Any]", _money(series).to_pylist())

    def row_batches(self, table: str, frame: pd.DataFrame) -> Iterator[list[tuple[Any, ...]]]:
        """Rows as DB-API parameters, in :data:`SCHEMA` column order: nulls as ``None``."""
        converted: list[list[Any]] = []
        for column, kind in SCHEMA[table].items():
            series = frame[column]
            if kind == "timestamp":
                converted.append(self.timestamps(series))
            elif kind in ("int", "bool"):
                cast = int if kind == "int" else bool
                converted.append([None if v is pd.NA else cast(v) for v in series.astype(object)])
            elif kind == "numeric":
                converted.append(self.money(series))
            else:
                converted.append(to_python(series))
        rows = list(zip(*converted, strict=True))
        for start in range(0, len(rows), BATCH_ROWS):
            yield rows[start : start + BATCH_ROWS]


def _datetimes(series: pd.Series) -> list[Any]:
    return [None if v is pd.NaT else v.to_pydatetime() for v in series.astype(object)]


class DuckDB(Dialect):
    """
    DuckDB: DataFrames ingested in bulk, by column name; DDL and data in one transaction.

    DuckDB lets one process open a database file for writing: a load that finds the file locked by
    another process waits, with jittered retries, up to ``lock_timeout``. A DuckDB file serves the
    processes of ONE machine: workers on other machines need a server database.

    DuckDB keeps a transaction's new rows in its own memory, uncompressed, until the commit (rows of many
    small INSERTs are not written to the file early): a fan-out's load grows by about 12 MB per 1,000
    invoices of a dozen lines, and DuckDB's default limit is 80 % of RAM. ``memory_limit`` in the
    connection extra bounds it, DuckDB spilling the rest to its temp directory (``<file>.tmp``) inside the
    same transaction; its own work needs room too, more with more threads and columns
    (``{"memory_limit": "64MB", "threads": 1}`` loads a 10,000-invoice fan-out, with ``focus`` too; at
    32 MB even 1,000 invoices with ``focus`` fail at the commit). The provider sets no limit: one it chose
    could fail a load that fits in memory.
    """

    types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR",
        "string": "VARCHAR",
        "json": "VARCHAR",
        "numeric": DECIMAL,
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
    }
    creates_schema = True
    current_schema = "current_schema()"

    def open_cursor(self) -> Any:
        # A DuckDB cursor is a second connection with its own transaction: use the connection itself.
        return self.conn

    @classmethod
    def busy(cls, exc: Exception) -> bool:
        """Another process holds the file, or is creating it (a file seconds old, its header not yet written)."""
        text = str(exc)
        if "Could not set lock on file" in text:
            return True
        created = _DUCKDB_BEING_CREATED.search(text)
        try:
            return created is not None and time.time() - os.path.getmtime(created[1]) < CREATION_GRACE
        except OSError:
            return False

    def begin(self) -> None:
        self.conn.begin()

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        """
        The frame as Arrow, scanned by DuckDB natively (money stays ``decimal128``), inserted by column name.

        The view is a reader of the part's batches, not the table: a view dropped inside a transaction keeps
        its object until the commit, and a reader, once scanned, holds no rows (every part's Arrow table would).
        """
        columns = SCHEMA[table]
        view = f"fastly_billing_frame_{table}"
        select = ", ".join(f"CAST({c} AS {self.column_type(c, k)})" for c, k in columns.items())
        data = arrow_table(frame, table)
        # On failure the view goes with the connection; unregistering inside an aborted transaction would fail.
        self.conn.register(view, pa.RecordBatchReader.from_batches(data.schema, data.to_batches()))
        self.conn.execute(
            f"INSERT INTO {self.tables.qualified(table)} ({', '.join(columns)}) SELECT {select} FROM {view}"
        )
        self.conn.unregister(view)


class PostgreSQL(Dialect):
    """
    PostgreSQL: rows through ``COPY`` with an explicit column list; DDL and data in one transaction.

    The transaction starts with ``pg_advisory_xact_lock`` on a key of the qualified table set (and, while
    the schema does not exist yet, on one of the schema), so concurrent loads of the same or different
    months wait for each other instead of colliding on the catalog or the primary key.
    ``lock_timeout`` bounds the wait (``SET LOCAL lock_timeout``).
    """

    types: ClassVar[dict[str, str]] = {
        "key": "TEXT",
        "string": "TEXT",
        "json": "TEXT",
        "numeric": "NUMERIC",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
    }
    creates_schema = True
    current_schema = "current_schema()"

    def lock(self) -> None:
        self.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout * 1000)}")
        schema = self.tables.schema
        try:
            # CREATE SCHEMA IF NOT EXISTS races on the catalog: loads into a new schema take its key first.
            exists = f"SELECT 1 FROM pg_namespace WHERE nspname = LOWER({self.params.marks(1)})"
            if schema and not self.execute(exists, [schema]).fetchall():
                self._advisory(_lock_id(_lock_key("schema", schema.lower())))
            self._advisory(self.tables.lock_id())
        except Exception as exc:
            if getattr(exc, "pgcode", None) == "55P03" or getattr(exc, "sqlstate", None) == "55P03":
                raise TimeoutError(
                    f"another load of {self.tables.qualified('*')} held its lock for more than "
                    f"{self.lock_timeout:g} s (lock_timeout)"
                ) from exc
            raise

    def _advisory(self, lock_id: int) -> None:
        self.execute(f"SELECT pg_advisory_xact_lock({self.params.marks(1)})", [lock_id])

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        """
        The frame as Arrow, through one ``COPY FROM STDIN`` of CSV encoded batch by batch as it is sent.

        The server parses what the socket buffers hold while the next batch is encoded, so encoding and
        parsing overlap without a thread. Strings are always quoted and nulls never, so an empty string and
        a null stay apart; money is written with its exact digits, times in UTC. psycopg2 (``copy_expert``)
        and psycopg 3 (``cursor.copy``) both work.
        """
        columns = list(SCHEMA[table])
        sql = f"COPY {self.tables.qualified(table)} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
        chunks = map(_csv, arrow_table(frame, table, timestamp_unit="us").to_batches(COPY_ROWS))
        if hasattr(self.cursor, "copy_expert"):
            _copy_expert(self.cursor, sql, chunks)
        else:
            with self.cursor.copy(sql) as copy:
                for chunk in chunks:
                    copy.write(chunk)


class SQLite(Dialect):
    """
    SQLite: money as text with its exact digits (SQLite has no exact decimal), times as ISO 8601 text.

    The transaction is ``BEGIN IMMEDIATE`` under a busy timeout of ``lock_timeout``: a load waits for the
    one writing instead of failing with ``database is locked``. DDL and data are one transaction.
    """

    types: ClassVar[dict[str, str]] = {
        "key": "TEXT",
        "string": "TEXT",
        "json": "TEXT",
        "numeric": "TEXT",
        "int": "INTEGER",
        "bool": "INTEGER",
        "timestamp": "TEXT",
    }

    def begin(self) -> None:
        self.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
        try:
            self.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            if "locked" in str(exc):
                raise TimeoutError(
                    f"the SQLite database {self.hook.connection.host} stayed locked by another writer for "
                    f"{self.lock_timeout:g} s (lock_timeout)"
                ) from exc
            raise

    def columns(self, table: str) -> set[str]:
        schema = f"{self.tables.schema}." if self.tables.schema else ""
        return {row[1].lower() for row in self.execute(f"PRAGMA {schema}table_info({self.tables.name(table)})")}

    def timestamps(self, series: pd.Series) -> list[Any]:
        return [None if v is None else v.isoformat() for v in _datetimes(series)]

    def money(self, series: pd.Series) -> list[Any]:
        """Plain decimal text without trailing fraction zeros (``1200``, ``0.0075``)."""
        return [None if v is None else _plain(v) for v in _money(series).to_pylist()]


class MySQL(Dialect):
    """
    MySQL and MariaDB: bounded keys, exact DECIMAL, DATETIME(6) in UTC, LONGTEXT JSON.

    Key columns are ``VARCHAR(255)`` with a binary collation (the primary key must fit InnoDB's 3072-byte
    limit; customer ids are case-sensitive); other text is ``TEXT``/``LONGTEXT``, off the row-size limit.
    The session runs in UTC and in strict mode, so a value that does not fit is an error, not a truncation.
    MySQL commits DDL implicitly, so a load holds ``GET_LOCK`` (a session lock, named from the table set,
    waiting up to ``lock_timeout``) across the DDL and the data transaction, and releases it at the end.
    """

    types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR(255)",
        "string": "TEXT",
        "json": "LONGTEXT",
        "numeric": DECIMAL,
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "timestamp": "DATETIME(6)",
    }
    creates_schema = True
    current_schema = "DATABASE()"
    table_options = " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

    def begin(self) -> None:
        """The session in UTC and strict mode; the transaction itself starts with the first write."""
        self.execute("SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES')")

    def lock(self) -> None:
        sql = f"SELECT GET_LOCK({self.params.marks(2)})"
        ((got,),) = self.execute(sql, [self.tables.lock_name(), int(self.lock_timeout)]).fetchall()
        if got != 1:
            raise TimeoutError(
                f"another load of {self.tables.qualified('*')} held lock {self.tables.lock_name()} for more than "
                f"{self.lock_timeout:g} s (lock_timeout)"
            )

    def release(self) -> None:
        self.execute(f"SELECT RELEASE_LOCK({self.params.marks(1)})", [self.tables.lock_name()]).fetchall()


def _plain(value: Any) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def arrow_table(frame: pd.DataFrame, table: str, *, timestamp_unit: str | None = None) -> pa.Table:
    """
    A frame's :data:`SCHEMA` columns, in order, as an Arrow table: what engines ingest without Python objects.

    Money is ``decimal128(38, 15)`` whether the frame holds it as Arrow or as ``Decimal`` objects (a value
    with more fraction digits is refused, never rounded); ints and bools get their types even when all null.

    :param table: a table of :data:`TABLES`.
    :param timestamp_unit: cast timestamps to this unit (``"us"``: what PostgreSQL keeps), cutting finer digits.
    """
    columns = []
    for name, kind in SCHEMA[table].items():
        series = frame[name]
        if kind == "numeric":
            column = _money(series)
        elif kind in _ARROW_TYPES:
            column = pa.array(series, type=_ARROW_TYPES[kind])
        else:
            column = pa.array(series)
        if timestamp_unit and pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp(timestamp_unit, tz="UTC"), safe=False)
        columns.append(column)
    return pa.table(columns, names=list(SCHEMA[table]))


_ARROW_TYPES = {"int": pa.int64(), "bool": pa.bool_()}


def _money(series: pd.Series) -> pa.Array:
    """A money column as ``decimal128(38, 15)``: Arrow columns as they are, ``Decimal`` objects converted exactly."""
    try:
        return pa.array(series, type=MONEY)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"column {series.name}: a value is not an exact number of {DECIMAL}: {exc}") from exc


def _csv(batch: pa.RecordBatch) -> memoryview:
    """A batch as CSV for ``COPY``: strings quoted, nulls empty, money and times as :func:`_as_text` writes them."""
    out = pa.BufferOutputStream()
    pa_csv.write_csv(_as_text(batch), out, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return memoryview(out.getvalue())


def _as_text(data: pa.RecordBatch) -> pa.RecordBatch:
    """
    Money and UTC times as text, by Arrow's casts (times about 20 times faster than its CSV writer formats them).

    Money keeps every digit; a time reads ``2025-06-01 00:00:00.000000+00``, so no session time zone applies.
    """
    columns = []
    for column in data.columns:
        if pa.types.is_decimal(column.type):
            column = pc.cast(column, pa.string())
        elif pa.types.is_timestamp(column.type):
            naive = pc.cast(column, pa.timestamp(column.type.unit))
            column = pc.binary_join_element_wise(pc.cast(naive, pa.string()), "+00", "")
        columns.append(column)
    return pa.record_batch(columns, names=data.schema.names)


def _copy_expert(cursor: Any, sql: str, chunks: Iterator[memoryview]) -> None:
    """
    psycopg2's ``COPY FROM STDIN`` of the chunks; an error making them is raised as itself, not as the
    ``QueryCanceled`` psycopg2 turns it into.
    """
    source = _Chunks(chunks)
    try:
        cursor.copy_expert(sql, source, size=COPY_READ)
    except Exception:
        if source.error is None:
            raise
        raise source.error from None


class _Chunks:
    """Byte chunks as the file ``copy_expert`` reads (at most ``size`` bytes a read); an error getting one is kept."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self.chunks, self.left = chunks, memoryview(b"")
        self.error: Exception | None = None

    def read(self, size: int) -> bytes:
        try:
            while not self.left:
                chunk = next(self.chunks, None)
                if chunk is None:
                    return b""
                self.left = chunk
        except Exception as exc:
            self.error = exc
            raise
        part, self.left = self.left[:size], self.left[size:]
        return bytes(part)


DIALECTS: dict[str, type[Dialect]] = {
    "duckdb": DuckDB,
    "psycopg2": PostgreSQL,
    "psycopg": PostgreSQL,
    "sqlite3": SQLite,
    "MySQLdb": MySQL,
    "mysql": MySQL,
}
"""The dialect of each DB-API driver (the top-level module of its connection class); others get :class:`Dialect`."""


def _connect(hook: Any, lock_timeout: float) -> Any:
    """The hook's connection; while the driver says another process holds the database, retry (jittered, bounded)."""
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            return hook.get_conn()
        except Exception as exc:
            if not DIALECTS.get(_driver(exc), Dialect).busy(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"waited {lock_timeout:g} s (lock_timeout) for another process to release the database: {exc}"
                ) from exc
            if delay == 0.05:
                log.info("Database in use by another process; waiting up to %g s: %s", lock_timeout, exc)
            time.sleep(min(left, random.uniform(delay / 2, delay)))
            delay = min(delay * 2, 1.0)


def _lock_timeout(lock_timeout: float | None, hook: Any) -> float:
    if lock_timeout is None:
        lock_timeout = float(hook.connection_extra.get("lock_timeout", LOCK_TIMEOUT))
    if not lock_timeout >= 0:
        raise ValueError(f"lock_timeout must be a number of seconds >= 0, got {lock_timeout!r}")
    return lock_timeout


def invoice_tables(
    frames: InvoiceFrames,
    *,
    focus: bool = False,
    account_names: Mapping[str, str] | None = None,
    service_costs: pd.DataFrame | None = None,
) -> dict[str, Rows]:
    """
    The tables of an invoice load: the four invoice tables, and ``focus`` on request, all by the invoices' keys.

    :param frames: the invoices' frames.
    :param focus: also the ``focus`` table (:func:`~.focus.to_focus_table`).
    :param account_names: customer id -> account name, for the ``focus`` table's ``BillingAccountName``.
    :param service_costs: the invoices' allocation, to split the ``focus`` rows per service (``ResourceId``).
    """
    tables = {name: Rows(frame, frames.load_keys) for name, frame in frames.tables.items()}
    if focus:
        tables["focus"] = Rows(_focus_table(frames, account_names, service_costs), frames.load_keys)
    return tables


def service_cost_tables(
    frames: InvoiceFrames, usage: pd.DataFrame, service_usage: pd.DataFrame, customer_id: str, months: Sequence[str]
) -> dict[str, Rows]:
    """
    The usage tables of a customer's months and the allocation of that customer's invoices across services.

    ``usage`` and ``service_usage`` replace the months' earlier usage (``usage/<customer>/<month>``);
    ``service_costs`` replaces the invoices' earlier allocation (the invoices' load keys).

    :param frames: the invoices being loaded; only ``customer_id``'s are allocated.
    :param usage: :func:`~.usage.usage_to_frames` of the months.
    :param service_usage: :func:`~.usage.service_usage_to_frames` of the months.
    :param customer_id: the customer the usage belongs to (the token's).
    :param months: the ``YYYY-MM`` months the usage covers, even those with no usage.
    :raises ~.allocation.AllocationError: a usage-based line matches no usage type of its month.
    """
    keys = [usage_load_key(customer_id, month) for month in months]
    mine = frames.invoices["customer_id"] == customer_id
    lines = frames.line_items[frames.line_items["customer_id"] == customer_id]
    costs = allocate(frames.invoices[mine], lines, usage, service_usage)
    return {
        "usage": Rows(usage, keys),
        "service_usage": Rows(service_usage, keys),
        "service_costs": Rows(costs, list(frames.invoices.loc[mine, "load_key"])),
    }


def _focus_table(
    frames: InvoiceFrames, account_names: Mapping[str, str] | None, service_costs: pd.DataFrame | None
) -> pd.DataFrame:
    """The ``focus`` rows; a cost that :data:`DECIMAL` would round (rate x units) is refused, never rounded."""
    table = to_focus_table(frames, account_names=account_names, service_costs=service_costs)
    for column, kind in FOCUS_SCHEMA.items():
        values = list(table[column])
        if kind != "numeric" or _all_fit(values):
            continue
        for row, value in enumerate(values):
            problem = value is not None and _misfit(value)
            if problem:
                raise FocusError(
                    f"invoice {table['invoice_id'].iat[row]} (customer {table['customer_id'].iat[row]}), "
                    f"line {table['x_FastlyLineNumber'].iat[row]}: FOCUS {column} {value!r} {problem}"
                )
    return table


def load_frames(
    frames: InvoiceFrames,
    conn_id: str,
    *,
    schema: str | None = None,
    table_prefix: str = "fastly_",
    lock_timeout: float | None = None,
    focus: bool = False,
    account_names: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """
    Write ``frames`` into the warehouse of ``conn_id``, replacing the loads they hold; return rows per table.

    :param frames: the tables, from :func:`~airflow_provider_fastly_billing.frames.invoice_to_frames`.
    :param conn_id: an Airflow connection whose hook is a common-sql ``DbApiHook`` (DuckDB, PostgreSQL,
        SQLite, MySQL/MariaDB, or any other).
    :param schema: the schema to write into; default the connection's.
    :param table_prefix: prefix of the table names (``fastly_invoices``...).
    :param lock_timeout: seconds to wait for concurrent loads of the same warehouse before failing;
        default the connection extra ``lock_timeout`` (not on PostgreSQL, whose hook hands every extra
        to libpq), else :data:`LOCK_TIMEOUT` (10 minutes).
    :param focus: also write the ``focus`` table (FOCUS 1.2 rows of the invoices), in the same transaction.
    :param account_names: customer id -> account name for the ``focus`` table; default the customer id.
    """
    tables = invoice_tables(frames, focus=focus, account_names=account_names)
    return load_tables(tables, conn_id, schema=schema, table_prefix=table_prefix, lock_timeout=lock_timeout)


def load_tables(
    tables: Mapping[str, Rows],
    conn_id: str,
    *,
    schema: str | None = None,
    table_prefix: str = "fastly_",
    lock_timeout: float | None = None,
) -> dict[str, int]:
    """
    Write tables of :data:`TABLES` in one transaction: each table's rows replace its rows of the same load keys.

    One :class:`Load` with one :meth:`~Load.write`.

    :param tables: table name (without prefix) -> its :class:`Rows`; e.g. :func:`invoice_tables` joined with
        the usage tables of the same months.
    :param conn_id: as for :func:`load_frames`.
    :param schema: as for :func:`load_frames`.
    :param table_prefix: as for :func:`load_frames`.
    :param lock_timeout: as for :func:`load_frames`.
    """
    with Load(conn_id, tables=tables, schema=schema, table_prefix=table_prefix, lock_timeout=lock_timeout) as load:
        load.write(tables)
    return load.rows


class Load:
    """
    One all-or-nothing load written in parts: ``with Load(conn_id, tables=...) as load: load.write(...)``, repeatedly.

    Entering takes the lock, checks that existing tables of the names in ``tables`` are ours, and creates
    or migrates them (before any data: MySQL commits DDL implicitly). Each :meth:`write` replaces, per
    table, the rows of its load keys; leaving commits, or rolls everything back on any exception. A caller
    with many invoices builds and writes their tables part by part, so memory holds one part, not all.

    :param conn_id: as for :func:`load_frames`.
    :param tables: the names (of :data:`TABLES`, without prefix) the load may write; default the four
        invoice tables.
    :param schema: as for :func:`load_frames`.
    :param table_prefix: as for :func:`load_frames`.
    :param lock_timeout: as for :func:`load_frames`.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        tables: Iterable[str] = INVOICE_TABLES,
        schema: str | None = None,
        table_prefix: str = "fastly_",
        lock_timeout: float | None = None,
    ) -> None:
        check_identifier(schema, "schema")
        check_identifier(table_prefix, "table_prefix")
        names = list(dict.fromkeys(tables))
        unknown = sorted(set(names) - TABLES.keys())
        if unknown:
            raise ValueError(f"unknown tables {', '.join(unknown)}: the provider writes {', '.join(TABLES)}")
        self.conn_id, self.tables, self.lock_timeout = conn_id, Tables(schema, table_prefix), lock_timeout
        self.rows = dict.fromkeys(names, 0)
        """Rows written so far, per table."""
        self.dialect: Dialect | None = None

    def __enter__(self) -> Load:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_hook(self.conn_id)
        if not isinstance(hook, DbApiHook):
            raise TypeError(f"connection {self.conn_id!r} is not a SQL database connection ({type(hook).__name__})")
        timeout = _lock_timeout(self.lock_timeout, hook)
        conn = _connect(hook, timeout)
        try:
            self.dialect = DIALECTS.get(_driver(conn), Dialect)(hook, conn, self.tables, timeout)
            self.dialect.begin()
            self.dialect.lock()
            self.dialect.prepare(list(self.rows))
        except BaseException as exc:
            self._end(conn, exc)
            raise
        return self

    def write(self, tables: Mapping[str, Rows]) -> None:
        """Replace, in each table, the rows of its load keys with its new rows, inside the load's transaction."""
        if self.dialect is None:
            raise RuntimeError("write inside `with Load(...) as load:` only")
        undeclared = sorted(set(tables) - self.rows.keys())
        if undeclared:
            raise ValueError(f"tables {', '.join(undeclared)} were not named when the load began: pass them in tables=")
        for name, rows in tables.items():
            self.dialect.delete(name, rows.load_keys)
        for name, rows in tables.items():
            if not rows.frame.empty:
                self.dialect.insert(name, rows.frame)
            self.rows[name] += len(rows.frame)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.dialect is not None:
            self._end(self.dialect.conn, exc)

    def _end(self, conn: Any, exc: BaseException | None) -> None:
        """Commit (or, after ``exc``, roll back), release the lock and close the connection."""
        dialect, self.dialect = self.dialect, None
        try:
            if exc is None:
                conn.commit()
            else:
                # A dropped connection cannot roll back, but its server already has: keep the original error.
                with contextlib.suppress(Exception):
                    conn.rollback()
        finally:
            if dialect is not None:
                with contextlib.suppress(Exception):
                    dialect.release()
            conn.close()
