"""Billing v3 in real DAG runs: the deferrable sensor, ListInvoicesOperator, the v3 example DAG, v2 then v3."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pendulum
import pytest

from tests.dagrun import run_dag, run_dag_file

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def test_v3_sensor_deferrable(fastly: FastlySimulator) -> None:
    fastly.mtd_pending = 3
    run = run_dag(
        "v3_sensor_deferrable",
        """
        from airflow_provider_fastly_billing.sensors.billing import InvoiceMtdSensor
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            InvoiceMtdSensor(task_id="estimate", api_version="v3", poke_interval=0.05, timeout=30, deferrable=True)
        """,
    )
    assert run.state == "success"
    estimate = run.xcom["estimate"]
    assert estimate["customer_id"] == fastly.customer_id
    assert estimate["monthly_transaction_amount"] == str(Decimal(estimate["monthly_transaction_amount"]))
    assert [r.path for r in fastly.billing_requests()] == ["/billing/v3/invoices/month-to-date"] * 4


def test_list_invoices_operator_summary_and_file(fastly: FastlySimulator, tmp_path: Path) -> None:
    run = run_dag(
        "v3_list_invoices",
        f"""
        from airflow_provider_fastly_billing.operators.billing import ListInvoicesOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            ListInvoicesOperator(task_id="summary", start="2025-01-01", end="{{{{ ds }}}}", page_size=4)
            ListInvoicesOperator(
                task_id="file", start="2025-01-01", end="2025-02-28", output_path="{tmp_path}/v3.json"
            )
        """,
        logical_date=pendulum.datetime(2025, 3, 1, tz="UTC"),
    )
    assert run.state == "success"
    summary = run.xcom["summary"]
    assert summary["count"] == 3 * 3 == len(set(summary["invoice_ids"]))
    expected = sum(fastly.invoice_v3(int(i))["monthly_transaction_amount"] for i in summary["invoice_ids"])
    assert Decimal(summary["total_amount"]) == expected
    written = json.loads((tmp_path / "v3.json").read_text())
    assert len(written) == 6 and run.xcom["file"]["bytes"] == (tmp_path / "v3.json").stat().st_size


def run_example(name: str, logical_date: pendulum.DateTime):
    target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{name}.py"
    shutil.copy(EXAMPLES / f"{name}.py", target)
    return run_dag_file(target, logical_date)


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"], indirect=True)
def test_v2_then_v3_of_the_same_month(fastly: FastlySimulator, warehouse: Warehouse, connect) -> None:
    connect("fastly_warehouse", json.loads(os.environ[f"AIRFLOW_CONN_{warehouse.conn_id.upper()}"]))
    warehouse.schema = None if warehouse.dialect == "duckdb" else warehouse.schema
    april = pendulum.datetime(2025, 5, 1, tz="UTC")
    for _ in range(2):  # each generation stays idempotent
        assert run_example("fastly_invoices_monthly", april).state == "success"
        assert run_example("fastly_invoices_v3", april).state == "success"
    rows = warehouse.rows(
        "SELECT i.api_version, i.customer_id, i.cost, SUM(l.amount) FROM {invoices} i "
        "JOIN {line_items} l ON l.load_key = i.load_key GROUP BY i.api_version, i.customer_id, i.cost"
    )
    by_version = {(v, c): (Decimal(str(cost)), Decimal(str(total))) for v, c, cost, total in rows}
    assert len(by_version) == 1 + len(fastly.customers)  # v2: the account; v3: every account customer
    v2_cost, v2_sum = by_version[("v2", fastly.customer_id)]
    v3_cost, v3_sum = by_version[("v3", fastly.customer_id)]
    assert v2_cost == v2_sum == v3_cost == v3_sum == fastly.invoice(fastly.customer_id, 2025, 4)["total"]["cost"]
    for customer in fastly.customers:
        cost, total = by_version[("v3", customer)]
        assert cost == total == fastly.invoice(customer, 2025, 4)["total"]["cost"]
    v3_columns = warehouse.rows(
        "SELECT DISTINCT currency_code, statement_number IS NOT NULL FROM {invoices} WHERE api_version = 'v3'"
    )
    assert [(c, bool(s)) for c, s in v3_columns] == [("USD", True)]
    products = warehouse.rows("SELECT DISTINCT product_name FROM {line_items} WHERE api_version = 'v3'")
    assert {p for (p,) in products} >= {"CDN", "TLS"}
