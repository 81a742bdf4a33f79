"""1,000,000 line-item rows: load_frames versus DataFrame.to_sql(method="multi") over SQLAlchemy."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import sqlalchemy

from airflow_provider_fastly_billing.frames import invoice_to_frames
from airflow_provider_fastly_billing.warehouse import load_frames
from benchmarks.common import WORK, compare
from benchmarks.frames import big_invoice

ROWS = int(os.environ.get("BENCH_LOAD_ROWS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_LOAD_ROUNDS", "1"))
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
TARGETS = {"duckdb": 10.0, "postgres": 5.0}


def _duckdb(frames: Any) -> dict[str, Any]:
    folder = WORK / "load"
    os.environ["AIRFLOW_CONN_BENCH_DUCKDB"] = json.dumps({"conn_type": "duckdb", "host": str(folder / "p.duckdb")})

    def fresh() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def baseline() -> None:
        engine = sqlalchemy.create_engine(f"duckdb:///{folder / 'b.duckdb'}")
        frames.line_items.to_sql("line_items", engine, method="multi", chunksize=10_000, index=False)
        engine.dispose()

    return compare(lambda: load_frames(frames, "bench_duckdb"), baseline, ROUNDS, prepare=fresh)


def _postgres(frames: Any) -> dict[str, Any]:
    engine = sqlalchemy.create_engine(POSTGRES)
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    os.environ["AIRFLOW_CONN_BENCH_POSTGRES"] = json.dumps(conn)

    def fresh() -> None:
        with engine.begin() as db:
            db.exec_driver_sql(
                "DROP SCHEMA IF EXISTS bench_provider CASCADE; DROP SCHEMA IF EXISTS bench_baseline CASCADE"
            )
            db.exec_driver_sql("CREATE SCHEMA bench_baseline")

    def baseline() -> None:
        frames.line_items.to_sql(
            "line_items", engine, schema="bench_baseline", method="multi", chunksize=10_000, index=False
        )

    try:
        return compare(lambda: load_frames(frames, "bench_postgres", schema="bench_provider"), baseline, ROUNDS, fresh)
    finally:
        fresh()
        with engine.begin() as db:
            db.exec_driver_sql("DROP SCHEMA bench_baseline CASCADE")


def run() -> dict[str, Any]:
    frames = invoice_to_frames(big_invoice(ROWS))
    results = {}
    for name, bench in (("duckdb", _duckdb), ("postgres", _postgres)):
        result = bench(frames)
        speedup = 1 / result["ratio"]
        results[name] = {**result, "rows": ROWS, "speedup": speedup, "target": f">= {TARGETS[name]:.0f}x faster",
                         "met": speedup >= TARGETS[name]}  # fmt: skip
    return results
