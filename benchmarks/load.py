"""
Rows 3 and 4: 1,000,000 line items into PostgreSQL and DuckDB, against the floor of each engine.

The provider's load (``load_frames``) is timed against the fastest way to put the same rows into a table of
the same types: PostgreSQL's ``COPY FROM STDIN`` of pre-encoded CSV, DuckDB's ``INSERT INTO t SELECT * FROM``
an Arrow table. The stages before the load (parse of the JSON body, frames) are timed too: the breakdown.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv

from airflow_provider_fastly_billing.frames import KEY, SCHEMA, invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import DuckDB, PostgreSQL, load_frames
from benchmarks.common import ROUNDS, WORK, compare, median_time
from benchmarks.frames import MONEY, UTC, big_invoice

ROWS = int(os.environ.get("BENCH_LOAD_ROWS", "1000000"))
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
TARGETS = {"postgres": 1.5, "duckdb": 1.3}
ARROW = {"string": pa.string(), "json": pa.string(), "numeric": MONEY, "int": pa.int64(), "bool": pa.bool_(),
         "timestamp": UTC}  # fmt: skip


def _floor_table(frames: Any) -> pa.Table:
    """The line items as an Arrow table of the warehouse's exact types (built untimed: the floor's input)."""
    schema = pa.schema([(c, pa.string() if c in KEY else ARROW[k]) for c, k in SCHEMA["line_items"].items()])
    return pa.Table.from_pandas(frames.line_items, preserve_index=False).cast(schema)


def _create(dialect: type, table: str) -> str:
    body = ", ".join(f"{c} {dialect.types['key' if c in KEY else k]}" for c, k in SCHEMA["line_items"].items())
    return f"CREATE TABLE {table} ({body})"


def _duckdb(frames: Any, floor: pa.Table) -> dict[str, Any]:
    folder = WORK / "load"
    os.environ["AIRFLOW_CONN_BENCH_DUCKDB"] = json.dumps({"conn_type": "duckdb", "host": str(folder / "p.duckdb")})

    def fresh() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def baseline() -> None:
        db = duckdb.connect(str(folder / "floor.duckdb"))
        db.execute(_create(DuckDB, "line_items"))
        db.register("floor_rows", floor)
        db.execute("INSERT INTO line_items SELECT * FROM floor_rows")
        db.close()

    fresh()
    load_frames(invoice_to_frames(big_invoice(10)), "bench_duckdb")  # warm-up: the hook's and driver's imports
    return compare(lambda: load_frames(frames, "bench_duckdb"), baseline, prepare=fresh)


def _postgres(frames: Any, floor: pa.Table) -> dict[str, Any]:
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    os.environ["AIRFLOW_CONN_BENCH_POSTGRES"] = json.dumps(conn)
    out = pa.BufferOutputStream()
    pacsv.write_csv(floor, out, pacsv.WriteOptions(include_header=False))
    encoded = out.getvalue().to_pybytes()
    db = psycopg2.connect(**POSTGRES)

    def fresh() -> None:
        with db.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS bench_provider CASCADE; DROP SCHEMA IF EXISTS bench_floor CASCADE")
            cursor.execute("CREATE SCHEMA bench_floor; " + _create(PostgreSQL, "bench_floor.line_items"))
        db.commit()

    def baseline() -> None:
        with db.cursor() as cursor:
            sql = f"COPY bench_floor.line_items ({', '.join(SCHEMA['line_items'])}) FROM STDIN WITH (FORMAT csv)"
            cursor.copy_expert(sql, _Reader(encoded))
        db.commit()

    try:
        fresh()
        load_frames(invoice_to_frames(big_invoice(10)), "bench_postgres", schema="bench_provider")  # warm-up
        return compare(lambda: load_frames(frames, "bench_postgres", schema="bench_provider"), baseline, prepare=fresh)
    finally:
        with db.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS bench_provider CASCADE; DROP SCHEMA IF EXISTS bench_floor CASCADE")
        db.commit()
        db.close()


class _Reader:
    """Pre-encoded bytes as the file ``copy_expert`` reads, without a copy into BytesIO."""

    def __init__(self, data: bytes) -> None:
        self.view, self.at = memoryview(data), 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size < 0 else self.at + size
        chunk, self.at = self.view[self.at : end], min(end, len(self.view))
        return bytes(chunk)

    readline = read


def run() -> dict[str, Any]:
    body = to_json(big_invoice(ROWS))
    invoice = parse_json(body)
    frames = invoice_to_frames(invoice)
    stage_rounds = min(ROUNDS, 3)
    stages = {
        "parse_s": median_time(lambda: parse_json(body), stage_rounds),
        "frames_s": median_time(lambda: invoice_to_frames(invoice), stage_rounds),
        "body_mb": len(body) / (1 << 20),
    }
    floor = _floor_table(frames)
    results: dict[str, Any] = {"stages": stages}
    for name, bench in (("duckdb", _duckdb), ("postgres", _postgres)):
        result = bench(frames, floor)
        results[name] = {**result, "rows": ROWS, "rows_per_s": ROWS / result["provider_s"],
                         "target": f"<= {TARGETS[name]}", "met": result["ratio"] <= TARGETS[name]}  # fmt: skip
    return results
