"""The tables beyond the invoices (FOCUS, usage, cost per service): same transaction, keys, dialects and checks."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.api.usage import service_usage_queries
from airflow_provider_fastly_billing.focus import FocusError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.usage import service_usage_to_frames, usage_to_frames
from airflow_provider_fastly_billing.warehouse import (
    TABLES,
    invoice_tables,
    load_frames,
    load_tables,
    service_cost_tables,
)
from tests.conftest import EVERY_WAREHOUSE
from tests.test_warehouse import FETCHED, as_decimal, frames_of, invoice

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse

every_warehouse = pytest.mark.parametrize("warehouse", EVERY_WAREHOUSE, indirect=True)


def test_every_table_is_one_registry_entry() -> None:
    assert list(TABLES) == [
        "invoices", "line_items", "regions", "extras", "focus", "usage", "service_usage", "service_costs"
    ]  # fmt: skip
    assert [name for name, table in TABLES.items() if table.primary_key] == ["invoices"]
    assert TABLES["usage"].key == TABLES["service_usage"].key == ("load_key", "customer_id", "month")


def billed_per_invoice(warehouse: Warehouse) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for invoice_id, cost in warehouse.rows("SELECT invoice_id, billedcost FROM {focus}"):
        sums[invoice_id] += as_decimal(cost)
    return dict(sums)


@every_warehouse
def test_focus_table_adds_up_to_every_invoice_and_is_replaced_with_it(warehouse: Warehouse) -> None:
    docs = [invoice(m, c) for m in (1, 2) for c in (0, 1)]
    names = {invoice(1, 0)["customer_id"]: "Acme Media Ltd"}
    rows = load_frames(frames_of(*docs), warehouse.conn_id, schema=warehouse.schema, focus=True, account_names=names)
    assert rows["focus"] == sum(len(d["line_items"]) for d in docs)
    load_frames(frames_of(*docs[:2]), warehouse.conn_id, schema=warehouse.schema, focus=True, account_names=names)
    assert billed_per_invoice(warehouse) == {str(d["invoice_id"]): d["total"]["cost"] for d in docs}
    account = warehouse.rows(
        f"SELECT DISTINCT billingaccountname FROM {{focus}} WHERE customer_id = '{docs[0]['customer_id']}'"
    )
    assert account == [("Acme Media Ltd",)]
    assert warehouse.rows("SELECT COUNT(*) FROM {focus}")[0][0] == rows["focus"]


def test_plain_invoice_loads_write_no_focus_table(warehouse: Warehouse) -> None:
    assert set(load_frames(frames_of(invoice(3)), warehouse.conn_id, schema=warehouse.schema)) == {
        "invoices", "line_items", "regions", "extras"
    }  # fmt: skip
    with pytest.raises(Exception, match=r"(?i)fastly_focus|does not exist|no such table|not found"):
        warehouse.rows("SELECT COUNT(*) FROM {focus}")


def test_a_focus_cost_the_warehouse_would_round_is_refused(warehouse: Warehouse) -> None:
    doc = invoice(4)
    usage_line = next(i for i in doc["line_items"] if i.get("rate_per_unit"))
    usage_line["rate_per_unit"] = Decimal("0.123456789012345")
    usage_line["units"] = Decimal("1.5")
    with pytest.raises(
        FocusError, match=r"line 1: FOCUS ContractedCost Decimal\('0.1851851835185175'\) has 16 fraction digits"
    ):
        load_frames(frames_of(doc), warehouse.conn_id, schema=warehouse.schema, focus=True)
    with pytest.raises(Exception, match=r"(?i)does not exist|no such table|not found"):
        warehouse.rows("SELECT COUNT(*) FROM {invoices}")


def months_of_usage(hook: BillingHook, months: list[str]) -> tuple:
    items = hook.get_usage_metrics(months[0], months[-1])
    services = [row for query in service_usage_queries(items) for row in hook.list_service_usage(**query)]
    return items, services


@every_warehouse
def test_usage_and_service_costs_load_with_the_invoices_and_add_up_per_line(
    warehouse: Warehouse, sim: FastlySimulator, connect
) -> None:
    connect("fastly_default", sim.connection())
    hook = BillingHook(max_wait=0.01)
    months = ["2025-01", "2025-02"]
    items, services = months_of_usage(hook, months)
    docs = [invoice(1), invoice(2)]
    frames = frames_of(*docs)
    customer = sim.customer_id
    tables = invoice_tables(frames) | service_cost_tables(
        frames, usage_to_frames(items, customer, FETCHED), service_usage_to_frames(services, FETCHED), customer, months
    )
    for _ in range(2):  # a second load replaces the first
        rows = load_tables(tables, warehouse.conn_id, schema=warehouse.schema)
    assert rows["usage"] == len(items) and rows["service_usage"] == len(services)
    per_line: dict[tuple, Decimal] = defaultdict(Decimal)
    for invoice_id, line, amount in warehouse.rows("SELECT invoice_id, line_number, amount FROM {service_costs}"):
        per_line[invoice_id, int(line)] += as_decimal(amount)
    expected = {
        (str(d["invoice_id"]), n): item["amount"] for d in docs for n, item in enumerate(d["line_items"], start=1)
    }
    assert per_line == expected
    keys = warehouse.rows("SELECT DISTINCT load_key FROM {service_usage} ORDER BY load_key")
    assert keys == [(f"usage/{customer}/{m}",) for m in months]
    units = sum(as_decimal(u) for (u,) in warehouse.rows("SELECT usage_units FROM {service_usage}"))
    assert units == sum(s["usage_units"] for s in services)


def test_a_foreign_usage_table_is_refused_before_anything_is_written(
    warehouse: Warehouse, sim: FastlySimulator, connect
) -> None:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_hook(warehouse.conn_id).get_conn()
    try:
        if warehouse.schema and warehouse.dialect != "sqlite":
            conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {warehouse.schema}")
        conn.cursor().execute(f"CREATE TABLE {warehouse.table('usage')} (load_key TEXT, customer_id TEXT)")
        conn.commit()
    finally:
        conn.close()
    connect("fastly_default", sim.connection())
    items, services = months_of_usage(BillingHook(max_wait=0.01), ["2025-03"])
    frames = frames_of(invoice(3))
    tables = invoice_tables(frames) | service_cost_tables(
        frames, usage_to_frames(items, sim.customer_id), service_usage_to_frames(services), sim.customer_id, ["2025-03"]
    )
    refused = r"fastly_usage lacks month\): choose another table_prefix or schema; nothing was created or written"
    with pytest.raises(ValueError, match=refused):
        load_tables(tables, warehouse.conn_id, schema=warehouse.schema)
    with pytest.raises(Exception, match=r"(?i)does not exist|no such table|not found"):
        warehouse.rows("SELECT COUNT(*) FROM {invoices}")


def test_unknown_tables_are_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="unknown tables costs"):
        load_tables({"costs": invoice_tables(frames_of(invoice(1)))["invoices"]}, warehouse.conn_id)
