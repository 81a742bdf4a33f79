"""Every billing operator in real DAG runs against the simulator: XComs, files, templating, errors."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing.invoices import invoice_csv, invoice_pdf
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.xcom import jsonable
from tests.dagrun import run_dag

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_fastly_billing.testing import FastlySimulator


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def test_get_invoice_templated_from_the_run_dates(fastly: FastlySimulator) -> None:
    run = run_dag(
        "get_invoice_templated",
        """
        from airflow_provider_fastly_billing.operators.billing import GetInvoiceOperator
        with DAG(DAG_ID, schedule="@monthly", start_date=START, catchup=False) as dag:
            GetInvoiceOperator(
                task_id="invoice",
                year="{{ data_interval_start.year }}",
                month="{{ data_interval_start.strftime('%m') }}",
            )
        """,
    )
    assert run.state == "success"
    assert run.rendered["invoice"]["year"] == "2025"
    assert run.rendered["invoice"]["month"] in ("02", "03")
    month = int(run.rendered["invoice"]["month"])
    assert [r.path for r in fastly.billing_requests()] == [f"/billing/v2/year/2025/month/{month:02d}"]
    expected = fastly.invoice(fastly.customer_id, 2025, month)
    assert run.xcom["invoice"] == jsonable(parse_json(to_json(expected)))
    assert Decimal(run.xcom["invoice"]["total"]["cost"]) == expected["total"]["cost"]
    assert sum(Decimal(i["amount"]) for i in run.xcom["invoice"]["line_items"]) == expected["total"]["cost"]


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_get_invoice_by_id_writes_the_file(fastly: FastlySimulator, tmp_path: Path, fmt: str) -> None:
    customer = fastly.customers[1]
    invoice_id = fastly.invoice_ids(customer)[4]
    target = tmp_path / "files" / f"invoice.{fmt}"
    run = run_dag(
        f"get_invoice_by_id_{fmt}",
        f"""
        from airflow_provider_fastly_billing.operators.billing import GetInvoiceByIdOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            GetInvoiceByIdOperator(
                task_id="invoice",
                customer_id="{{{{ params.customer }}}}",
                invoice_id="{{{{ params.invoice }}}}",
                output_path="{target}",
                fmt="{fmt}",
                params={{"customer": "{customer}", "invoice": {invoice_id}}},
            )
        """,
    )
    assert run.state == "success"
    invoice = fastly.invoice_by_id(customer, invoice_id)
    expected = invoice_csv(invoice) if fmt == "csv" else b"".join(invoice_pdf(invoice)[1])
    assert target.read_bytes() == expected
    assert run.xcom["invoice"] == {"path": str(target), "bytes": len(expected), "format": fmt}
    assert run.rendered["invoice"]["invoice_id"] == str(invoice_id)


def test_json_to_an_object_storage_url(fastly: FastlySimulator, tmp_path: Path) -> None:
    import json

    run = run_dag(
        "get_invoice_json_file",
        f"""
        from airflow.sdk import Asset
        from airflow_provider_fastly_billing.operators.billing import GetInvoiceOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            GetInvoiceOperator(
                task_id="invoice", year=2025, month=5, output_path="file://{tmp_path}/inv/2025-05.json",
                outlets=[Asset("file://{tmp_path}/inv/2025-05.json")],
            )
        """,
    )
    assert run.state == "success"
    written = (tmp_path / "inv" / "2025-05.json").read_bytes()
    assert json.loads(written) == jsonable(parse_json(to_json(fastly.invoice(fastly.customer_id, 2025, 5))))
    assert run.xcom["invoice"]["bytes"] == len(written)


def test_bad_templated_month_fails_before_any_request(fastly: FastlySimulator, capfd) -> None:
    run = run_dag(
        "get_invoice_bad_month",
        """
        from airflow_provider_fastly_billing.operators.billing import GetInvoiceOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            GetInvoiceOperator(task_id="invoice", year="2025", month="{{ 6 + 7 }}")
        """,
    )
    assert run.state == "failed"
    assert "month '13' is not between 1 and 12" in capfd.readouterr().out
    assert fastly.requests == []


def test_csv_without_output_path_is_refused(fastly: FastlySimulator, capfd) -> None:
    run = run_dag(
        "get_invoice_csv_no_path",
        """
        from airflow_provider_fastly_billing.operators.billing import GetInvoiceOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            GetInvoiceOperator(task_id="invoice", year="2025", month=1, fmt="csv")
        """,
    )
    assert run.state == "failed"
    assert "fmt='csv' writes a file: give output_path" in capfd.readouterr().out
    assert fastly.requests == []


MTD_DAG = """
from airflow_provider_fastly_billing.operators.billing import GetInvoiceMtdOperator
with DAG(DAG_ID, schedule=None, start_date=START) as dag:
    GetInvoiceMtdOperator(
        task_id="estimate", customer_id="{customer}", poll_interval=0.05, timeout={timeout},
        deferrable={deferrable},
    )
"""


@pytest.mark.parametrize("deferrable", [False, True])
def test_mtd_operator_waits_out_202s(fastly: FastlySimulator, deferrable: bool) -> None:
    fastly.mtd_pending = 3
    customer = fastly.customers[2]
    run = run_dag(
        f"mtd_operator_{deferrable}",
        MTD_DAG.format(customer=customer, timeout=30, deferrable=deferrable),
    )
    assert run.state == "success"
    assert run.xcom["estimate"]["customer_id"] == customer
    assert run.xcom["estimate"]["status"]["status"] == "MTD"
    assert len(fastly.billing_requests()) == 4
    assert {r.path for r in fastly.billing_requests()} == {f"/billing/v2/account_customers/{customer}/mtd_invoice"}


@pytest.mark.parametrize("deferrable", [False, True])
def test_mtd_operator_timeout_names_the_customer(fastly: FastlySimulator, deferrable: bool, capfd) -> None:
    fastly.mtd_pending = 10_000
    run = run_dag(
        f"mtd_operator_timeout_{deferrable}",
        MTD_DAG.format(customer=fastly.customer_id, timeout=0.3, deferrable=deferrable),
    )
    assert run.state == "failed"
    message = f"Fastly month-to-date estimate for customer {fastly.customer_id} was not ready after 0 s"
    assert message in capfd.readouterr().out


def copy_kwargs(sim: FastlySimulator, folder: Path) -> dict[str, dict]:
    """What each operator and sensor class needs to run against ``sim`` (files go to ``folder``): add new ones."""
    pairs = [[c, sim.invoice_ids(c)[-2]] for c in sim.customers[1:]]
    customer = {"customer_id": sim.customer_id}
    return {
        "GetInvoiceOperator": {"year": 2025, "month": 1},
        "GetInvoiceByIdOperator": {
            **customer,
            "invoice_id": sim.invoice_ids(sim.customer_id)[3],
            "output_path": str(folder / "invoice.csv"),
            "fmt": "csv",
        },
        "ListInvoicesOperator": {"start": "2025-01-01", "end": "2025-02-28"},
        "GetInvoiceMtdOperator": {**customer, "poll_interval": 0.05, "timeout": 30},
        "InvoiceToSqlOperator": {"invoices": pairs, "warehouse_conn_id": "copy_warehouse", "max_workers": 2},
        "InvoiceMtdSensor": {**customer, "poke_interval": 0.05, "timeout": 30},
        "FocusExportOperator": {"destination": str(folder / "focus.csv"), "year": 2025, "month": 1, "fmt": "csv"},
    }


def provider_operator_classes() -> list[type]:
    """Every public operator and sensor class of the provider, found by walking its packages."""
    import importlib
    import inspect
    import pkgutil

    from airflow.sdk import BaseOperator

    import airflow_provider_fastly_billing.operators
    import airflow_provider_fastly_billing.sensors

    found = []
    for package in (airflow_provider_fastly_billing.operators, airflow_provider_fastly_billing.sensors):
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            found += [
                cls
                for name, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, BaseOperator) and cls.__module__ == module.__name__ and not name.startswith("_")
            ]
    return sorted(found, key=lambda cls: cls.__name__)


def test_every_operator_and_sensor_survives_deepcopy(fastly: FastlySimulator, connect, tmp_path: Path) -> None:
    """Airflow deep-copies tasks (``partial_subset``): a copy, also one made after its hook was used, runs."""
    import copy

    classes, kwargs = provider_operator_classes(), copy_kwargs(fastly, tmp_path)
    assert {cls.__name__ for cls in classes} == set(kwargs)
    connect("copy_warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "copy.duckdb")})
    for cls in classes:
        operator = cls(task_id="used", **kwargs[cls.__name__])
        if hasattr(cls, "hook"):  # a hook already used is copied too
            assert operator.hook.get_invoice(2025, 1)["total"]["cost"] > 0
            assert copy.deepcopy(operator).hook is not operator.hook
        assert copy.deepcopy(operator).task_id == "used"
    fastly.reset()
    imports = "".join(f"from {cls.__module__} import {cls.__name__}\n" for cls in classes)
    tasks = "".join(f"    {c.__name__}(task_id={c.__name__!r}, **{kwargs[c.__name__]!r})\n" for c in classes)
    run = run_dag(
        "deep_copied",
        f"import copy\n{imports}with DAG(DAG_ID, schedule=None, start_date=START) as original:\n{tasks}"
        "dag = copy.deepcopy(original)\n"
        "assert all(dag.task_dict[t] is not original.task_dict[t] for t in original.task_ids)\n"
        "del original\n",
    )
    assert run.states == {cls.__name__: "success" for cls in classes} and run.state == "success"
    pairs = kwargs["InvoiceToSqlOperator"]["invoices"]
    assert sorted(run.xcom["InvoiceToSqlOperator"]["invoice_ids"]) == sorted(str(i) for _, i in pairs)
    expected = fastly.invoice(fastly.customer_id, 2025, 1)["total"]["cost"]
    assert Decimal(run.xcom["GetInvoiceOperator"]["total"]["cost"]) == expected
    assert run.xcom["InvoiceMtdSensor"]["customer_id"] == fastly.customer_id
    assert run.xcom["GetInvoiceByIdOperator"]["bytes"] == (tmp_path / "invoice.csv").stat().st_size > 0
