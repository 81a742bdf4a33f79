"""MariaDB through the mysql provider, both drivers: what MySQL-family servers get wrong by default, kept right."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.frames import invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import load_frames

if TYPE_CHECKING:
    from tests.conftest import Warehouse

pytestmark = pytest.mark.parametrize("warehouse", ["mariadb", "mariadb_connector"], indirect=True)
FETCHED = datetime(2026, 11, 2, 8, 30, 15, 123456, tzinfo=timezone.utc)
SIM = FastlySimulator(account_customers=2)
BIG = Decimal("12345678901234567890123.123456789012345")  # 38 digits, 15 after the point


def test_times_microseconds_money_long_json_and_unicode_come_back_exactly(warehouse: Warehouse) -> None:
    doc = parse_json(to_json(SIM.invoice(SIM.customer_id, 2025, 3)))
    item = doc["line_items"][0]
    item.update(description="Ünïcødé ✓ 🚀", amount=BIG, rate_per_unit=Decimal("0.000000000000001"))
    item["created_at"] = "2025-03-04T10:06:07.654321+05:00"
    doc["fastly_big"] = "x" * 100_000 + "END"
    load_frames(invoice_to_frames(doc, FETCHED), warehouse.conn_id, schema=warehouse.schema)

    # The server's own time zone is not UTC, so nothing below holds by accident.
    assert warehouse.rows("SELECT @@global.time_zone") == [("+05:00",)]
    ((fetched_at, raw),) = warehouse.rows("SELECT fetched_at, raw FROM {invoices}")
    assert fetched_at == FETCHED.replace(tzinfo=None)
    assert json.loads(raw)["fastly_big"] == doc["fastly_big"]
    columns = "description, amount, rate_per_unit, created_at"
    row = warehouse.rows(f"SELECT {columns} FROM {{line_items}} WHERE line_number = {item['line_number']}")
    assert row == [("Ünïcødé ✓ 🚀", BIG, Decimal("0.000000000000001"), datetime(2025, 3, 4, 5, 6, 7, 654321))]


def test_load_keys_that_differ_only_in_case_are_different_loads(warehouse: Warehouse) -> None:
    doc = parse_json(to_json(SIM.invoice(SIM.customer_id, 2025, 4)))
    other = {**doc, "customer_id": doc["customer_id"].swapcase()}
    for each in (doc, other):
        load_frames(invoice_to_frames(each, FETCHED), warehouse.conn_id, schema=warehouse.schema)
    assert sorted(warehouse.rows("SELECT customer_id FROM {invoices}")) == sorted(
        [(doc["customer_id"],), (other["customer_id"],)]
    )
