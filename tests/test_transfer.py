"""InvoiceToSqlOperator in real DAG runs, from the simulator into real warehouses."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tests.dagrun import run_dag

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def transfer_dag(warehouse: Warehouse, arguments: str) -> str:
    return f"""
    from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
    with DAG(DAG_ID, schedule=None, start_date=START, render_template_as_native_obj=True) as dag:
        InvoiceToSqlOperator(
            task_id="load", warehouse_conn_id="{warehouse.conn_id}", schema={warehouse.schema!r},
            poll_interval=0.05, {arguments}
        )
    """


def test_period_load_with_summary(fastly: FastlySimulator, warehouse: Warehouse) -> None:
    run = run_dag(f"transfer_period_{warehouse.dialect}", transfer_dag(warehouse, 'year="2025", month="{{ 4 }}"'))
    assert run.state == "success"
    invoice = fastly.invoice(fastly.customer_id, 2025, 4)
    summary = run.xcom["load"]
    assert summary["invoice_ids"] == [str(invoice["invoice_id"])]
    assert Decimal(summary["total_cost"]) == invoice["total"]["cost"]
    assert summary["rows"]["line_items"] == len(invoice["line_items"])
    (total,) = warehouse.rows("SELECT cost FROM {invoices}")[0]
    assert Decimal(str(total)) == invoice["total"]["cost"]


def test_reseller_invoices_in_one_load(fastly: FastlySimulator, warehouse: Warehouse) -> None:
    pairs = [[c, fastly.invoice_ids(c)[i]] for c in fastly.customers for i in (2, 3)]
    fastly.latency = 0.05
    run = run_dag(
        f"transfer_reseller_{warehouse.dialect}", transfer_dag(warehouse, f"invoices={pairs!r}, max_workers=3")
    )
    assert run.state == "success"
    assert sorted(run.xcom["load"]["invoice_ids"]) == sorted(str(i) for _, i in pairs)
    assert 1 < fastly.max_in_flight <= 3
    rows = warehouse.rows("SELECT customer_id, COUNT(*) FROM {invoices} GROUP BY customer_id")
    assert sorted(rows) == sorted((c, 2) for c in fastly.customers)
    expected = sum(fastly.invoice_by_id(c, i)["total"]["cost"] for c, i in pairs)
    assert Decimal(run.xcom["load"]["total_cost"]) == expected


@pytest.mark.parametrize("deferrable", [False, True])
def test_estimate_waits_out_202s_then_loads(fastly: FastlySimulator, warehouse: Warehouse, deferrable: bool) -> None:
    fastly.mtd_pending = 2
    customer = fastly.customers[1]
    run = run_dag(
        f"transfer_estimate_{warehouse.dialect}_{deferrable}",
        transfer_dag(warehouse, f"estimate_for=[{customer!r}], deferrable={deferrable}"),
    )
    assert run.state == "success"
    assert len(fastly.billing_requests()) == 3
    rows = warehouse.rows("SELECT customer_id, is_estimate, status FROM {invoices}")
    assert [(c, bool(e), s) for c, e, s in rows] == [(customer, True, "MTD")]


def test_estimates_of_several_customers(fastly: FastlySimulator, warehouse: Warehouse) -> None:
    fastly.mtd_pending = 1
    run = run_dag(
        f"transfer_estimates_{warehouse.dialect}", transfer_dag(warehouse, f"estimate_for={fastly.customers!r}")
    )
    assert run.state == "success"
    assert len(run.xcom["load"]["load_keys"]) == 3
    assert warehouse.rows("SELECT COUNT(*) FROM {invoices} WHERE is_estimate")[0][0] == 3


def test_focus_rows_named_from_the_customer_api_once_per_load(fastly: FastlySimulator, warehouse: Warehouse) -> None:
    run = run_dag(
        f"transfer_focus_{warehouse.dialect}",
        transfer_dag(warehouse, 'api_version="v3", year=2025, month=5, focus=True'),
    )
    assert run.state == "success"
    assert sorted(r.path for r in fastly.requests if r.path.startswith("/customer/")) == sorted(
        f"/customer/{c}" for c in fastly.customers
    )
    names = warehouse.rows("SELECT DISTINCT customer_id, billingaccountname FROM {focus}")
    assert sorted(names) == sorted((c, fastly.account_name(c)) for c in fastly.customers)
    billed: dict[str, Decimal] = {}
    for invoice_id, cost in warehouse.rows("SELECT invoice_id, billedcost FROM {focus}"):
        billed[invoice_id] = billed.get(invoice_id, Decimal(0)) + Decimal(str(cost))
    totals = warehouse.rows("SELECT invoice_id, cost FROM {invoices}")
    assert billed == {i: Decimal(str(c)) for i, c in totals} and len(billed) == 3
    assert run.xcom["load"]["rows"]["focus"] == sum(1 for _ in warehouse.rows("SELECT 1 FROM {focus}"))


def test_fan_out_in_parts_writes_focus_rows_of_every_part(
    fastly: FastlySimulator, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts of 2 invoices: each part's FOCUS rows are built from its own frames, accounts read once per load."""
    monkeypatch.setattr("airflow_provider_fastly_billing.operators.transfer.PART_SIZE", 2)
    pairs = [[c, fastly.invoice_ids(c)[i]] for c in fastly.customers for i in (2, 3)]
    run = run_dag(
        f"transfer_parts_focus_{warehouse.dialect}", transfer_dag(warehouse, f"invoices={pairs!r}, focus=True")
    )
    assert run.state == "success"
    assert sorted(r.path for r in fastly.requests if r.path.startswith("/customer/")) == sorted(
        f"/customer/{c}" for c in fastly.customers
    )
    billed: dict[str, Decimal] = {}
    for invoice_id, cost in warehouse.rows("SELECT invoice_id, billedcost FROM {focus}"):
        billed[invoice_id] = billed.get(invoice_id, Decimal(0)) + Decimal(str(cost))
    assert billed == {str(i): fastly.invoice_by_id(c, i)["total"]["cost"] for c, i in pairs}
    assert run.xcom["load"]["rows"]["focus"] == warehouse.rows("SELECT COUNT(*) FROM {focus}")[0][0]
    assert run.xcom["load"]["rows"]["invoices"] == len(pairs)


def test_v3_service_costs_allocate_the_token_customers_invoice(fastly: FastlySimulator, warehouse: Warehouse) -> None:
    run = run_dag(
        f"transfer_costs_v3_{warehouse.dialect}",
        transfer_dag(warehouse, 'api_version="v3", year=2025, month=6, service_costs=True'),
    )
    assert run.state == "success"
    assert warehouse.rows("SELECT COUNT(*) FROM {invoices}")[0][0] == len(fastly.customers)
    lines: dict[int, Decimal] = {}
    for customer, line, amount in warehouse.rows("SELECT customer_id, line_number, amount FROM {service_costs}"):
        assert customer == fastly.customer_id
        lines[int(line)] = lines.get(int(line), Decimal(0)) + Decimal(str(amount))
    billed = warehouse.rows(
        f"SELECT line_number, amount FROM {{line_items}} WHERE customer_id = '{fastly.customer_id}'"
    )
    assert lines == {int(n): Decimal(str(a)) for n, a in billed}
    assert warehouse.rows("SELECT DISTINCT month FROM {usage}") == [("2025-06",)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("invoices=[['good1', 5], ['../etc', 6]]", "customer_id must be"),
        ("invoices=[['good1', '5/6']]", "invoice_id must be"),
        ("year=2025, month=1, invoices=[['a', 1]]", "exactly one of"),
        ("", "exactly one of"),
        ("year=2025, month=1, table_prefix='x;drop'", "table_prefix must be"),
        ("year=2025, month=1, max_workers=500", "max_workers must be 1 to 16"),
        ("estimate_for=['abc'], service_costs=True", "service_costs needs year and month"),
        ("year=2025, month=1, focus=True, account_names=['Acme']", "account_names must be a mapping"),
    ],
)
def test_bad_arguments_fail_before_any_request(fastly, warehouse: Warehouse, arguments, message, capfd) -> None:
    run = run_dag(f"transfer_bad_{warehouse.dialect}", transfer_dag(warehouse, arguments))
    assert run.state == "failed"
    assert message in capfd.readouterr().out
    assert fastly.requests == []
