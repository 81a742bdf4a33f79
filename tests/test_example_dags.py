"""The example DAGs: they parse cleanly, and each runs end to end against the simulator into a warehouse."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pendulum
import pytest

from tests.dagrun import _load, run_dag_file

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"


@pytest.fixture
def warehouse_conn(monkeypatch, tmp_path) -> None:
    """The monthly DAG and the report read the warehouse connection when parsed: their assets' URIs."""
    warehouse = json.dumps({"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    monkeypatch.setenv("AIRFLOW_CONN_FASTLY_WAREHOUSE", warehouse)


def test_every_example_parses_without_import_errors(warehouse_conn) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "fastly_focus_monthly",
        "fastly_invoices_monthly",
        "fastly_invoices_report",
        "fastly_invoices_v3",
        "fastly_mtd_estimate_daily",
        "fastly_reseller_invoices",
        "fastly_service_costs_monthly",
    }


@pytest.fixture
def example(sim: FastlySimulator, connect, warehouse: Warehouse, monkeypatch):
    """Run an example DAG file from the DAGs folder with the simulator and ``fastly_warehouse`` set."""
    connect("fastly_default", sim.connection())
    connect("fastly_warehouse", json.loads(os.environ[f"AIRFLOW_CONN_{warehouse.conn_id.upper()}"]))
    monkeypatch.setenv("AIRFLOW_VAR_FASTLY_CUSTOMER_ID", sim.customer_id)
    if warehouse.dialect == "duckdb":
        warehouse.schema = None  # the example DAGs write to the connection's default schema

    def run(name: str, logical_date: pendulum.DateTime | None = None):
        target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{name}.py"
        shutil.copy(EXAMPLES / f"{name}.py", target)
        return run_dag_file(target, logical_date)

    return run


def test_monthly_loads_the_previous_month(example, sim: FastlySimulator, warehouse: Warehouse) -> None:
    for month in (2, 3, 3):
        run = example("fastly_invoices_monthly", pendulum.datetime(2025, month, 1, tz="UTC"))
        assert run.state == "success"
    assert run.rendered["load_invoice"]["year"] == "2025" and run.rendered["load_invoice"]["month"] == "2"
    rows = warehouse.rows("SELECT period_start, cost FROM {invoices} ORDER BY period_start")
    assert len(rows) == 2
    expected = [sim.invoice(sim.customer_id, 2025, m)["total"]["cost"] for m in (1, 2)]
    assert [Decimal(str(c)) for _, c in rows] == expected


def test_monthly_triggered_without_a_logical_date(example, sim: FastlySimulator, warehouse: Warehouse) -> None:
    """A run from the REST API or ``airflow dags trigger`` has no logical date: it loads the month before it ran."""
    target = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "fastly_invoices_monthly.py"
    shutil.copy(EXAMPLES / target.name, target)
    run = _load(target).test(logical_date=None, run_after=pendulum.datetime(2025, 1, 15, 9, 30, tz="UTC"))
    assert run.state == "success" and run.logical_date is None
    rows = warehouse.rows("SELECT period_start, cost FROM {invoices}")
    assert [(str(start)[:7], Decimal(str(cost))) for start, cost in rows] == [
        ("2024-12", sim.invoice(sim.customer_id, 2024, 12)["total"]["cost"])
    ]


@pytest.mark.parametrize(
    ("logical_date", "run_after", "month"),
    [
        (pendulum.datetime(2025, 1, 1, tz="UTC"), pendulum.datetime(2025, 1, 1, tz="UTC"), date(2024, 12, 1)),
        (pendulum.datetime(2025, 3, 1, tz="UTC"), pendulum.datetime(2025, 6, 9, tz="UTC"), date(2025, 2, 1)),
        (None, pendulum.datetime(2025, 3, 31, 23, 59, tz="UTC"), date(2025, 2, 1)),
    ],
)
def test_previous_month_of_every_kind_of_run(logical_date, run_after, month) -> None:
    from airflow_provider_fastly_billing.operators.macros import previous_month

    assert previous_month(SimpleNamespace(logical_date=logical_date, run_after=run_after)) == month


def test_monthly_loads_run_one_at_a_time_and_retry_with_backoff(warehouse_conn) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    for dag_id in ("fastly_invoices_monthly", "fastly_invoices_v3", "fastly_service_costs_monthly"):
        (task,) = bag.get_dag(dag_id).tasks
        assert task.max_active_tis_per_dag == 1
        assert task.retry_exponential_backoff
        assert task.retry_delay == pendulum.duration(minutes=1)


def test_mtd_estimate_daily(example, sim: FastlySimulator, warehouse: Warehouse) -> None:
    sim.mtd_pending = 1  # the sensor's first poke gets a 202, defers, and the trigger's first poll succeeds
    run = example("fastly_mtd_estimate_daily")
    assert run.states == {"wait_for_estimate": "success", "load_estimate": "success"}
    assert run.xcom["wait_for_estimate"]["customer_id"] == sim.customer_id
    assert warehouse.rows("SELECT COUNT(*) FROM {invoices} WHERE is_estimate")[0][0] == 1
    assert len(sim.billing_requests()) == 3  # poke (202), trigger poll (200), the load's fetch (200)


def test_reseller_invoices(example, sim: FastlySimulator, warehouse: Warehouse, monkeypatch) -> None:
    pairs = [[c, sim.invoice_ids(c)[-2]] for c in sim.customers]
    monkeypatch.setenv("AIRFLOW_VAR_FASTLY_RESELLER_INVOICES", json.dumps(pairs))
    run = example("fastly_reseller_invoices")
    assert run.state == "success"
    assert sorted(run.xcom["load_invoices"]["invoice_ids"]) == sorted(str(i) for _, i in pairs)
    assert warehouse.rows("SELECT COUNT(DISTINCT customer_id) FROM {invoices}")[0][0] == 3


def test_service_costs_monthly_splits_every_line_exactly(example, sim: FastlySimulator, warehouse: Warehouse) -> None:
    for month in (3, 4, 4):  # February, then March twice: a re-run replaces its month
        run = example("fastly_service_costs_monthly", pendulum.datetime(2025, month, 1, tz="UTC"))
        assert run.state == "success"
    lines: dict[tuple[str, int], Decimal] = {}
    for invoice_id, line, amount in warehouse.rows("SELECT invoice_id, line_number, amount FROM {service_costs}"):
        lines[invoice_id, int(line)] = lines.get((invoice_id, int(line)), Decimal(0)) + Decimal(str(amount))
    docs = [sim.invoice(sim.customer_id, 2025, m) for m in (2, 3)]
    assert lines == {
        (str(d["invoice_id"]), n): i["amount"] for d in docs for n, i in enumerate(d["line_items"], start=1)
    }
    services = warehouse.rows("SELECT COUNT(DISTINCT service_id) FROM {service_costs} WHERE allocated")[0][0]
    assert services >= 3
    months = warehouse.rows("SELECT month, COUNT(*) FROM {service_usage} GROUP BY month ORDER BY month")
    assert [m for m, _ in months] == ["2025-02", "2025-03"]
    per_service: dict[str | None, Decimal] = {}
    for service, amount in warehouse.rows("SELECT service_id, amount FROM {service_costs}"):
        per_service[service] = per_service.get(service, Decimal(0)) + Decimal(str(amount))
    in_focus: dict[str | None, Decimal] = {}
    for resource, cost in warehouse.rows("SELECT resourceid, billedcost FROM {focus}"):
        in_focus[resource] = in_focus.get(resource, Decimal(0)) + Decimal(str(cost))
    assert in_focus == per_service
    march = f"SELECT COUNT(*) FROM {{service_costs}} WHERE invoice_id = '{docs[1]['invoice_id']}'"
    assert run.xcom["load_service_costs"]["rows"]["service_costs"] == warehouse.rows(march)[0][0]


def test_the_copier_writes_the_examples_and_keeps_existing_files(tmp_path: Path) -> None:
    from airflow_provider_fastly_billing.examples import main

    main([str(tmp_path)])
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in EXAMPLES.glob("fastly_*.py")}
    with pytest.raises(FileExistsError, match="--force"):
        main([str(tmp_path)])
    main([str(tmp_path), "--force"])
