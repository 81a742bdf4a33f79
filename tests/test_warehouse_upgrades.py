"""Tables that changed under the loader: an older release's, a user's extra column, someone else's table."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing import warehouse as warehouse_module
from airflow_provider_fastly_billing.frames import SCHEMA, InvoiceFrames, invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import load_frames
from tests.conftest import EVERY_WAREHOUSE

if TYPE_CHECKING:
    from tests.conftest import Warehouse

pytestmark = pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)
FETCHED = datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc)
SIM = FastlySimulator(account_customers=2)
TABLES = ("invoices", "line_items", "regions", "extras")


def docs(month: int) -> list[dict]:
    return [parse_json(to_json(SIM.invoice(c, 2025, month))) for c in SIM.customers]


def frames(documents: list[dict]) -> InvoiceFrames:
    return InvoiceFrames.concat([invoice_to_frames(d, FETCHED) for d in documents])


def execute(wh: Warehouse, *statements: str) -> None:
    """Run statements as a user would, on their own connection, and commit."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_hook(wh.conn_id).get_conn()
    try:
        cursor = conn if wh.dialect == "duckdb" else conn.cursor()
        for sql in statements:
            cursor.execute(sql.format(**{t: wh.table(t) for t in TABLES}))
        if wh.dialect != "duckdb":
            conn.commit()
    finally:
        conn.close()


def line_items_of(wh: Warehouse, month: int) -> dict[tuple[str, int], tuple]:
    """(invoice_id, line_number) -> (description, amount, extra) of a month's loaded line items."""
    ids = {str(d["invoice_id"]) for d in docs(month)}
    rows = wh.rows("SELECT invoice_id, line_number, description, amount, extra FROM {line_items}")
    return {(i, int(n)): (d, None if a is None else Decimal(str(a)), e) for i, n, d, a, e in rows if i in ids}


def expected_line_items(documents: list[dict]) -> dict[tuple[str, int], tuple]:
    return {
        (str(d["invoice_id"]), item["line_number"]): (item["description"], item["amount"], None)
        for d in documents
        for item in d["line_items"]
    }


def table_names(wh: Warehouse) -> set[str]:
    if wh.dialect == "sqlite":
        return {n for (n,) in wh.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows = wh.rows(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{wh.schema}'")
    return {str(n) for (n,) in rows}


def test_tables_of_an_older_release_get_the_missing_columns_and_load(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The older release knew neither line items' description and amount (now last but one and two) nor costs.
    older = {name: dict(columns) for name, columns in SCHEMA.items()}
    for table, column in (("line_items", "description"), ("line_items", "amount"), ("invoices", "cost")):
        del older[table][column]
    with monkeypatch.context() as patch:
        patch.setattr(warehouse_module, "SCHEMA", older)
        load_frames(frames(docs(1)), warehouse.conn_id, schema=warehouse.schema)

    month_2 = docs(2)
    month_2[0]["line_items"][0]["carbon_grams"] = Decimal("12.5")
    load_frames(frames(month_2), warehouse.conn_id, schema=warehouse.schema)

    loaded = line_items_of(warehouse, 2)
    extra = loaded[(str(month_2[0]["invoice_id"]), month_2[0]["line_items"][0]["line_number"])][2]
    assert json.loads(extra) == {"carbon_grams": "12.5"}
    assert {k: v[:2] for k, v in loaded.items()} == {k: v[:2] for k, v in expected_line_items(month_2).items()}
    assert {(d, a) for d, a, _ in line_items_of(warehouse, 1).values()} == {(None, None)}
    costs = dict(warehouse.rows("SELECT invoice_id, cost FROM {invoices}"))
    assert {i: None if c is None else Decimal(str(c)) for i, c in costs.items()} == {
        **{str(d["invoice_id"]): None for d in docs(1)},
        **{str(d["invoice_id"]): d["total"]["cost"] for d in month_2},
    }
    load_frames(frames(docs(1)), warehouse.conn_id, schema=warehouse.schema)
    assert {k: v[:2] for k, v in line_items_of(warehouse, 1).items()} == {
        k: v[:2] for k, v in expected_line_items(docs(1)).items()
    }


def test_a_column_the_user_added_stays_and_is_null_in_new_rows(warehouse: Warehouse) -> None:
    load_frames(frames(docs(1)), warehouse.conn_id, schema=warehouse.schema)
    execute(
        warehouse,
        "ALTER TABLE {line_items} ADD COLUMN cost_center VARCHAR(50)",
        "UPDATE {line_items} SET cost_center = 'ops'",
        "ALTER TABLE {invoices} ADD COLUMN approved_by VARCHAR(50)",
    )
    month_2 = docs(2)
    month_2[0]["line_items"][0]["carbon_grams"] = Decimal("12.5")
    load_frames(frames(month_2), warehouse.conn_id, schema=warehouse.schema)

    loaded = line_items_of(warehouse, 2)
    first = (str(month_2[0]["invoice_id"]), month_2[0]["line_items"][0]["line_number"])
    assert json.loads(loaded.pop(first)[2]) == {"carbon_grams": "12.5"}
    expected = expected_line_items(month_2)
    del expected[first]
    assert loaded == expected
    by_invoice = warehouse.rows("SELECT invoice_id, cost_center FROM {line_items}")
    month_1 = {str(d["invoice_id"]) for d in docs(1)}
    assert {(i in month_1, c) for i, c in by_invoice} == {(True, "ops"), (False, None)}
    assert {a for (a,) in warehouse.rows("SELECT approved_by FROM {invoices}")} == {None}


def test_a_foreign_table_under_our_name_fails_before_anything_is_written(warehouse: Warehouse) -> None:
    if warehouse.dialect == "duckdb":
        execute(warehouse, f"CREATE SCHEMA {warehouse.schema}")
    execute(
        warehouse,
        "CREATE TABLE {regions} (id INTEGER, name VARCHAR(50), load_key VARCHAR(50))",
        "INSERT INTO {regions} (id, name) VALUES (1, 'kept')",
    )
    with pytest.raises(ValueError, match=r"fastly_regions lacks api_version, invoice_id, customer_id\b") as failure:
        load_frames(frames(docs(1)), warehouse.conn_id, schema=warehouse.schema)
    assert "nothing was created or written" in str(failure.value)
    assert table_names(warehouse) == {"fastly_regions"}
    assert warehouse.rows("SELECT id, name FROM {regions}") == [(1, "kept")]
