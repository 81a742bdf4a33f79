"""The token appears in no log line, XCom, rendered field or trigger kwarg of a whole DAG run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow_provider_fastly_billing.testing import FastlySimulator
from tests.dagrun import run_dag

TOKEN = "TOKEN-c4n4ry-5f3a9e-DO-NOT-LEAK"


def test_token_never_leaks_from_a_dag_run(connect, tmp_path: Path, capfd) -> None:
    with FastlySimulator(token=TOKEN, mtd_pending=2) as sim:
        connect("fastly_default", sim.connection())
        customer, invoice_id = sim.customers[1], sim.invoice_ids(sim.customers[1])[2]
        run = run_dag(
            "token_hygiene",
            f"""
            from airflow_provider_fastly_billing.operators.billing import (
                GetInvoiceByIdOperator, GetInvoiceMtdOperator, GetInvoiceOperator,
            )
            from airflow_provider_fastly_billing.sensors.billing import InvoiceMtdSensor
            with DAG(DAG_ID, schedule=None, start_date=START) as dag:
                GetInvoiceOperator(task_id="invoice", year="2025", month="{{{{ logical_date.month }}}}")
                GetInvoiceByIdOperator(
                    task_id="pdf", customer_id="{customer}", invoice_id={invoice_id},
                    fmt="pdf", output_path="{tmp_path}/i.pdf",
                )
                GetInvoiceMtdOperator(task_id="mtd", customer_id="{customer}", poll_interval=0.05)
                InvoiceMtdSensor(
                    task_id="sensor", customer_id="{sim.customer_id}", poke_interval=0.05, deferrable=True
                )
                GetInvoiceOperator(task_id="fails", year="2025", month="14")
            """,
        )
        captured = capfd.readouterr()
        assert len(sim.billing_requests()) >= 7
        assert all(r.headers["Fastly-Key"] == TOKEN for r in sim.requests)
    assert run.states == {
        "invoice": "success",
        "pdf": "success",
        "mtd": "success",
        "sensor": "success",
        "fails": "failed",
    }
    assert "month '14' is not between 1 and 12" in captured.out
    assert TOKEN not in captured.out and TOKEN not in captured.err
    assert TOKEN not in json.dumps(run.xcom) and TOKEN not in json.dumps(run.rendered)
    assert TOKEN not in (tmp_path / "i.pdf").read_text("latin-1")
    home = Path(os.environ["AIRFLOW_HOME"])
    leaking = [p for p in home.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaking == []  # task logs and the metadata database (XCom, trigger kwargs, rendered fields)
