"""Loads into real DuckDB, SQLite and PostgreSQL: idempotent, all or nothing, exact to the cent."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from airflow_provider_fastly_billing.frames import InvoiceFrames, estimate_to_frames, invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import load_frames
from tests.conftest import EVERY_WAREHOUSE

if TYPE_CHECKING:
    from tests.conftest import Warehouse

FETCHED = datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc)
SIM = FastlySimulator(account_customers=3)
every_warehouse = pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)


def invoice(month: int, customer: int = 0) -> dict:
    return parse_json(to_json(SIM.invoice(SIM.customers[customer], 2025, month)))


def frames_of(*docs: dict) -> InvoiceFrames:
    return InvoiceFrames.concat([invoice_to_frames(d, FETCHED) for d in docs])


def everything(wh: Warehouse) -> dict[str, list[tuple]]:
    return {
        t: sorted(wh.rows(f"SELECT * FROM {{{t}}}"), key=repr) for t in ("invoices", "line_items", "regions", "extras")
    }


def as_decimal(value) -> Decimal:
    return Decimal(str(value))


@every_warehouse
def test_sums_read_back_match_the_invoice_totals_to_the_cent(warehouse: Warehouse) -> None:
    docs = [invoice(m, c) for m in (1, 2, 3) for c in (0, 1)]
    rows = load_frames(frames_of(*docs), warehouse.conn_id, schema=warehouse.schema)
    assert rows["invoices"] == 6 and rows["line_items"] == sum(len(d["line_items"]) for d in docs)
    sums = warehouse.rows(
        "SELECT i.invoice_id, i.cost, l.amount FROM {invoices} i JOIN {line_items} l ON l.load_key = i.load_key"
    )
    per_invoice: dict[str, Decimal] = {}
    for invoice_id, _, amount in sums:
        per_invoice[invoice_id] = per_invoice.get(invoice_id, Decimal(0)) + as_decimal(amount)
    for doc in docs:
        assert per_invoice[str(doc["invoice_id"])] == doc["total"]["cost"]
    costs = {i: as_decimal(c) for i, c, _ in sums}
    assert costs == {str(d["invoice_id"]): d["total"]["cost"] for d in docs}


@every_warehouse
def test_loading_the_same_month_twice_gives_the_same_rows(warehouse: Warehouse) -> None:
    load_frames(frames_of(invoice(5)), warehouse.conn_id, schema=warehouse.schema)
    first = everything(warehouse)
    load_frames(frames_of(invoice(5)), warehouse.conn_id, schema=warehouse.schema)
    assert everything(warehouse) == first
    assert warehouse.rows("SELECT COUNT(*) FROM {invoices}") == [(1,)]


@every_warehouse
def test_a_failed_load_leaves_the_warehouse_as_it_was(warehouse: Warehouse) -> None:
    load_frames(frames_of(invoice(6), invoice(7)), warehouse.conn_id, schema=warehouse.schema)
    before = everything(warehouse)
    changed = invoice(6)
    changed["line_items"] = changed["line_items"][:1]
    # The same invoice twice in one load violates the invoices primary key after the deletes ran (stacked by
    # hand: InvoiceFrames.concat would keep it once).
    parts = [invoice_to_frames(d, FETCHED) for d in (changed, invoice(8), changed)]
    twice = InvoiceFrames(**{t: pd.concat([p.tables[t] for p in parts], ignore_index=True) for t in parts[0].tables})
    with pytest.raises(Exception, match=r"(?i)primary key|unique|duplicate"):
        load_frames(twice, warehouse.conn_id, schema=warehouse.schema)
    assert everything(warehouse) == before


@pytest.mark.parametrize("warehouse", ["duckdb"], indirect=True)
def test_a_duckdb_load_in_parts_keeps_no_part_once_written(warehouse: Warehouse) -> None:
    """DuckDB holds a part's Arrow data for its INSERT only, not until the commit: memory holds one part, not all."""
    import pyarrow as pa

    from airflow_provider_fastly_billing.warehouse import Load, Rows, arrow_table

    lines = pd.concat([frames_of(invoice(1)).line_items] * 500, ignore_index=True)
    part_bytes = arrow_table(lines, "line_items").nbytes
    with Load(warehouse.conn_id, tables=["line_items"], schema=warehouse.schema) as load:
        before = pa.total_allocated_bytes()
        for part in range(4):
            load.write({"line_items": Rows(lines.assign(load_key=f"part/{part}"), [f"part/{part}"])})
        held = pa.total_allocated_bytes() - before
    assert held < part_bytes
    assert warehouse.rows("SELECT COUNT(*) FROM {line_items}") == [(4 * len(lines),)]


@every_warehouse
def test_a_new_unknown_field_is_loaded_and_kept(warehouse: Warehouse) -> None:
    doc = invoice(9)
    doc["line_items"][0]["carbon_grams"] = Decimal("12.5")
    doc["fastly_new_section"] = {"a": [1, 2]}
    load_frames(frames_of(doc), warehouse.conn_id, schema=warehouse.schema)
    (extra,) = warehouse.rows("SELECT extra FROM {line_items} WHERE line_number = 1")[0]
    assert json.loads(extra) == {"carbon_grams": "12.5"}
    (raw,) = warehouse.rows("SELECT raw FROM {invoices}")[0]
    assert json.loads(raw)["fastly_new_section"] == {"a": [1, 2]}


@every_warehouse
def test_estimates_and_invoices_live_side_by_side(warehouse: Warehouse) -> None:
    estimate = parse_json(to_json(SIM.estimate(SIM.customer_id, 2025, 9)))
    load_frames(frames_of(invoice(9)), warehouse.conn_id, schema=warehouse.schema)
    load_frames(estimate_to_frames(estimate, FETCHED), warehouse.conn_id, schema=warehouse.schema)
    load_frames(estimate_to_frames(estimate, FETCHED), warehouse.conn_id, schema=warehouse.schema)
    rows = warehouse.rows("SELECT is_estimate, COUNT(*) FROM {invoices} GROUP BY is_estimate ORDER BY is_estimate")
    assert [(bool(e), n) for e, n in rows] == [(False, 1), (True, 1)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schema": "x; DROP TABLE y"}, "schema must be"),
        ({"schema": 'a"b'}, "schema must be"),
        ({"table_prefix": "t --"}, "table_prefix must be"),
        ({"table_prefix": "1abc"}, "table_prefix must be"),
    ],
)
def test_identifiers_that_could_inject_sql_are_refused(warehouse: Warehouse, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_frames(frames_of(invoice(1)), warehouse.conn_id, **options)


def test_a_connection_that_is_not_sql_is_refused(connect) -> None:
    connect("not_sql", {"conn_type": "fastly", "host": "https://api.fastly.com", "password": "x"})
    with pytest.raises(TypeError, match="not a SQL database connection"):
        load_frames(frames_of(invoice(1)), "not_sql")


@every_warehouse
def test_real_answer_with_string_amounts_loads_exactly(warehouse: Warehouse) -> None:
    from pathlib import Path

    doc = parse_json((Path(__file__).parent / "data" / "v2_invoice_meltano_2018_02.json").read_bytes())
    load_frames(invoice_to_frames(doc, FETCHED), warehouse.conn_id, schema=warehouse.schema)
    amounts = [as_decimal(a) for (a,) in warehouse.rows("SELECT amount FROM {line_items}")]
    assert sum(amounts) == Decimal("575.26")
    (units,) = warehouse.rows("SELECT units FROM {line_items} WHERE line_number = 6")[0]
    assert as_decimal(units) == Decimal("143.656927205")


@pytest.mark.parametrize("warehouse", ["postgres", "mariadb_connector"], indirect=True)
def test_the_generic_dbapi_path_loads_exactly_into_a_real_engine(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_fastly_billing import warehouse as warehouse_module

    # As for an engine without a dialect of its own: portable types, the driver's paramstyle, executemany.
    monkeypatch.setattr(warehouse_module, "DIALECTS", {})
    docs = [invoice(m, c) for m in (1, 2) for c in (0, 1)]
    load_frames(frames_of(*docs), warehouse.conn_id, schema=warehouse.schema)
    load_frames(frames_of(*docs), warehouse.conn_id, schema=warehouse.schema)
    costs = dict(warehouse.rows("SELECT invoice_id, cost FROM {invoices}"))
    assert {i: as_decimal(c) for i, c in costs.items()} == {str(d["invoice_id"]): d["total"]["cost"] for d in docs}
    amounts = [as_decimal(a) for (a,) in warehouse.rows("SELECT amount FROM {line_items}")]
    assert sum(amounts) == sum(d["total"]["cost"] for d in docs)
    ((fetched_at,),) = set(warehouse.rows("SELECT fetched_at FROM {invoices}"))
    assert fetched_at.replace(tzinfo=None) == FETCHED.replace(tzinfo=None)


@pytest.mark.parametrize(
    ("driver", "style", "sql"),
    [
        ("sqlite3", "qmark", "SELECT ? || ?"),
        ("sqlite3", "named", "SELECT :p0 || :p1"),
        ("sqlite3", "numeric", "SELECT :1 || :2"),
        ("psycopg2", "pyformat", "SELECT %(p0)s || %(p1)s"),
    ],
)
def test_placeholders_follow_each_dbapi_paramstyle(driver: str, style: str, sql: str) -> None:
    from airflow_provider_fastly_billing.warehouse import Params

    params = Params(style)
    assert f"SELECT {params.marks(2).replace(', ', ' || ')}" == sql
    if driver == "sqlite3":
        import sqlite3

        conn = sqlite3.connect(":memory:")
    else:
        import psycopg2

        from tests.conftest import postgres_available

        if not postgres_available():
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    cursor = conn.cursor()
    cursor.execute(sql, params.bind(["a", "b"]))
    assert cursor.fetchall() == [("ab",)]
    conn.close()


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_postgres_copy_is_exact_with_either_driver(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The COPY path with psycopg2 (copy_expert) and psycopg 3 (cursor.copy): every cent, '' apart from NULL.

    Batches of 2 rows and reads of 7 bytes, so rows cross batches and reads cross rows within the one COPY;
    an empty piece concatenated in (Arrow columns with an empty chunk) makes a batch of no rows mid-COPY.
    """
    import importlib
    import uuid

    from airflow_provider_fastly_billing import warehouse as warehouse_module
    from airflow_provider_fastly_billing.warehouse import INVOICE_TABLES, PostgreSQL, Tables
    from tests.conftest import postgres_available

    if not postgres_available():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    monkeypatch.setattr(warehouse_module, "COPY_ROWS", 2)
    monkeypatch.setattr(warehouse_module, "COPY_READ", 7)
    doc = invoice(3)
    doc["line_items"][0]["credit_coupon_code"] = ""
    doc["line_items"][1]["credit_coupon_code"] = None
    doc["line_items"][2]["amount"] = Decimal("12345678.123456789012345")
    frames = frames_of(doc)
    schema = f"copy_{driver}_{uuid.uuid4().hex[:8]}"
    conn = importlib.import_module(driver).connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        dialect = PostgreSQL(None, conn, Tables(schema, "fastly_"), 10.0)
        dialect.prepare(INVOICE_TABLES)
        for name, frame in frames.tables.items():
            dialect.insert(name, pd.concat([frame[:1], frame[:0], frame[1:]], ignore_index=True))
        conn.commit()
        cursor = conn.cursor()
        cursor.execute(
            f"SELECT amount, credit_coupon_code, created_at FROM {schema}.fastly_line_items ORDER BY line_number"
        )
        rows = cursor.fetchall()
        assert [r[0] for r in rows] == [i["amount"] for i in doc["line_items"]]
        assert rows[0][1] == "" and rows[1][1] is None
        assert rows[0][2] == frames.line_items["created_at"][0].to_pydatetime()
        cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_postgres_copy_raises_an_encoding_error_as_itself_and_keeps_no_row(
    driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error encoding a batch reaches the caller as itself (psycopg2 would say QueryCanceled); no row stays."""
    import importlib
    import uuid

    from airflow_provider_fastly_billing import warehouse as warehouse_module
    from airflow_provider_fastly_billing.warehouse import PostgreSQL, Tables
    from tests.conftest import postgres_available

    if not postgres_available():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    encode = warehouse_module._csv

    def failing_at_line_3(batch):
        if batch["line_number"][0].as_py() == 3:
            raise OverflowError("encoding line 3 failed")
        return encode(batch)

    monkeypatch.setattr(warehouse_module, "COPY_ROWS", 1)
    monkeypatch.setattr(warehouse_module, "_csv", failing_at_line_3)
    schema = f"copy_{driver}_{uuid.uuid4().hex[:8]}"
    conn = importlib.import_module(driver).connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        dialect = PostgreSQL(None, conn, Tables(schema, "fastly_"), 10.0)
        dialect.prepare(["line_items"])
        conn.commit()
        with pytest.raises(OverflowError, match="encoding line 3 failed"):
            dialect.insert("line_items", frames_of(invoice(3)).line_items)
        conn.rollback()
        cursor = conn.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM {schema}.fastly_line_items")
        assert cursor.fetchall() == [(0,)]
        cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.commit()
    finally:
        conn.close()
