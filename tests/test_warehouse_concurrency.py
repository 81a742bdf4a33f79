"""Loads in parallel PROCESSES, as Airflow workers run them: none fails because of another, rows and sums exact."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import traceback
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.frames import InvoiceFrames, invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import Tables, load_frames
from tests.conftest import EVERY_WAREHOUSE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.conftest import Warehouse

PROCESSES = 8
FETCHED = datetime(2026, 11, 2, 8, 30, 15, 123456, tzinfo=timezone.utc)
SIM = FastlySimulator(account_customers=3)
# Workers fork from one server process that imported Airflow, pandas and the drivers once: seconds, not minutes.
PRELOAD = ["airflow_provider_fastly_billing.warehouse", "tests.test_warehouse_concurrency", "psycopg2", "MySQLdb"]
PRELOAD += ["mysql.connector", "duckdb", "sqlite3"]


def month_frames(month: int) -> InvoiceFrames:
    """Every customer's invoice of a 2025 month."""
    docs = [parse_json(to_json(SIM.invoice(c, 2025, month))) for c in SIM.customers]
    return InvoiceFrames.concat([invoice_to_frames(d, FETCHED) for d in docs])


def load_month(month: int, conn: tuple[str, str], schema: str | None, start: multiprocessing.Barrier, results) -> None:
    """One worker process: build the frames, wait until every process is ready, then load at once."""
    try:
        from airflow_provider_fastly_billing.warehouse import load_frames

        conn_id, os.environ[f"AIRFLOW_CONN_{conn[0].upper()}"] = conn

        frames = month_frames(month)
        start.wait(timeout=120)
        results.put((month, "ok", load_frames(frames, conn_id, schema=schema, lock_timeout=120)))
    except BaseException:
        results.put((month, "failed", traceback.format_exc()))
        raise


def run_parallel(months: list[int], wh: Warehouse) -> list[tuple]:
    """Load ``months[i]`` in process i, all started together; every process's outcome."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    start, results = context.Barrier(len(months)), context.Queue()
    # The fork server keeps the environment it started with: hand each worker the test's connection.
    conn = (wh.conn_id, os.environ[f"AIRFLOW_CONN_{wh.conn_id.upper()}"])
    processes = [context.Process(target=load_month, args=(m, conn, wh.schema, start, results)) for m in months]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * len(processes), outcomes
    return outcomes


def assert_exact(wh: Warehouse, months: set[int]) -> None:
    """Counts of every table and the Decimal sums of the input, read back."""
    expected = InvoiceFrames.concat([month_frames(m) for m in sorted(months)])
    for name, frame in expected.tables.items():
        assert wh.rows(f"SELECT COUNT(*) FROM {{{name}}}") == [(len(frame),)], name
    costs = {str(i): c for i, c in zip(expected.invoices["invoice_id"], expected.invoices["cost"], strict=True)}
    assert {i: Decimal(str(c)) for i, c in wh.rows("SELECT invoice_id, cost FROM {invoices}")} == costs
    amounts = [Decimal(str(a)) for (a,) in wh.rows("SELECT amount FROM {line_items}")]
    assert sum(amounts) == sum(a for a in expected.line_items["amount"] if a is not None)
    assert sum(amounts) == sum(costs.values())


@pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)
@pytest.mark.parametrize("same_month", [True, False], ids=["same-month", "different-months"])
def test_parallel_loads_all_succeed_with_exact_rows(warehouse: Warehouse, same_month: bool) -> None:
    # Same month: into an existing empty schema, racing on the tables and the primary key. Different months:
    # into a schema that does not exist yet (where the engine has schemas), racing to create it too.
    wh = warehouse if same_month else warehouse.sibling("fresh")
    months = [5] * PROCESSES if same_month else list(range(1, PROCESSES + 1))
    outcomes = run_parallel(months, wh)
    assert [status for _, status, _ in outcomes] == ["ok"] * PROCESSES, outcomes
    assert_exact(wh, set(months))


@contextlib.contextmanager
def another_load(wh: Warehouse) -> Iterator[Callable[[], None]]:
    """Hold what a load of ``wh``'s tables waits for, as another process's load would; yield its release."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(wh.conn_id)
    if wh.dialect == "duckdb":
        hold = "import duckdb, sys; db = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
        holder = subprocess.Popen(
            [sys.executable, "-c", hold, conn.host], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert holder.stdout.readline() == b"held\n"
        release = holder.stdin.close
    elif wh.dialect == "sqlite":
        import sqlite3

        holder = sqlite3.connect(conn.host, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = holder.close
    elif wh.dialect == "postgres":
        import psycopg2

        holder = psycopg2.connect(host=conn.host, port=conn.port, user=conn.login, dbname=conn.schema)
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", [Tables(wh.schema, "fastly_").lock_id()])
        release = holder.close
    else:
        import MySQLdb

        holder = MySQLdb.connect(host=conn.host, port=conn.port, user=conn.login)
        holder.cursor().execute("SELECT GET_LOCK(%s, 0)", [Tables(wh.schema, "fastly_").lock_name()])
        release = holder.close
    try:
        yield release
    finally:
        with contextlib.suppress(Exception):
            release()
        if wh.dialect == "duckdb":
            holder.wait(timeout=30)


@pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)
def test_a_load_waits_for_another_and_gives_up_after_lock_timeout_naming_it(warehouse: Warehouse, connect) -> None:
    waited = {
        "duckdb": r"waited 1 s \(lock_timeout\) for another process .*Could not set lock on file .*w\.duckdb",
        "sqlite": r"SQLite database .*w\.sqlite stayed locked by another writer for 1 s \(lock_timeout\)",
    }.get(warehouse.dialect, rf"another load of {warehouse.schema}\.fastly_\* held .*1 s \(lock_timeout\)")
    frames = month_frames(1)
    # The wait is set per call, or per connection in its extra (not on PostgreSQL: its hook hands extras to libpq).
    per_call = {"lock_timeout": 1} if warehouse.dialect == "postgres" else {}
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{warehouse.conn_id.upper()}"])
    if not per_call:
        connect(warehouse.conn_id, {**conn, "extra": {**conn.get("extra", {}), "lock_timeout": 1}})
    with another_load(warehouse) as release:
        with pytest.raises(TimeoutError, match=waited):
            load_frames(frames, warehouse.conn_id, schema=warehouse.schema, **per_call)
        threading.Timer(1.0, release).start()
        load_frames(frames, warehouse.conn_id, schema=warehouse.schema, lock_timeout=60)
    assert_exact(warehouse, {1})


def test_a_duckdb_file_being_created_is_waited_for_a_broken_one_fails_at_once(tmp_path, connect) -> None:
    """A header-less file seconds old is another process creating it; an old one is broken, and said so at once."""
    path = tmp_path / "w.duckdb"
    path.write_bytes(b"")
    conn_id = connect("creating_duckdb", {"conn_type": "duckdb", "host": str(path)})
    with pytest.raises(TimeoutError, match=r"waited 1 s \(lock_timeout\).*not a valid DuckDB database file"):
        load_frames(month_frames(1), conn_id, lock_timeout=1)
    os.utime(path, (0, 0))
    with pytest.raises(Exception, match=r"not a valid DuckDB database file") as refused:
        load_frames(month_frames(1), conn_id, lock_timeout=600)
    assert not isinstance(refused.value, TimeoutError)
