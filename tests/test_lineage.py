"""OpenLineage: a real DAG run with the OpenLineage provider's listener and a file transport."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator
    from tests.conftest import Warehouse

ROOT = Path(__file__).resolve().parent.parent
DAG_FILE = """\
import pendulum
from airflow.sdk import DAG
from airflow_provider_fastly_billing.operators.billing import GetInvoiceOperator
from airflow_provider_fastly_billing.operators.focus import FocusExportOperator
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

with DAG("lineage_{dialect}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
    InvoiceToSqlOperator(task_id="load", warehouse_conn_id="{conn_id}", schema={schema!r}, year="2025", month="4")
    GetInvoiceOperator(task_id="get", year="2025", month="4", output_path="{folder}/invoice.json")
    FocusExportOperator(task_id="focus", year="2025", month="4", fmt="csv", destination="{folder}/focus.csv")
"""
RUN = """\
import sys
from pathlib import Path
from tests.dagrun import run_dag_file
run = run_dag_file(Path(sys.argv[1]))
assert run.state == "success", run.states
"""


def test_lineage_events_name_the_endpoint_and_the_tables(
    sim: FastlySimulator, connect, warehouse: Warehouse, tmp_path: Path
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    connect("fastly_default", sim.connection())
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"lineage_{warehouse.dialect}.py"
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    source = DAG_FILE.format(
        dialect=warehouse.dialect, conn_id=warehouse.conn_id, schema=warehouse.schema, folder=tmp_path
    )
    dag_file.write_text(source)
    events = tmp_path / "lineage.json"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    # The OpenLineage listener forks with the metadata database open: on SQLite that is only safe for a database
    # nobody else uses, so the run gets a copy of this worker's (idle while it waits) in a home of its own.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", home / "airflow.db")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "t",
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(dag_file)], env=env, cwd=ROOT, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    complete = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["eventType"] == "COMPLETE" and event["job"]["name"].count(".") == 1:
            complete[event["job"]["name"].split(".")[1]] = event
    assert set(complete) == {"load", "get", "focus"}
    api = {"namespace": sim.url.rstrip("/"), "name": "/billing/v2/year/2025/month/04"}
    for task in ("load", "get", "focus"):
        assert [{k: d[k] for k in ("namespace", "name")} for d in complete[task]["inputs"]] == [api]
    tables = {d["name"].rsplit(".", 1)[-1]: d for d in complete["load"]["outputs"]}
    assert set(tables) == {"fastly_invoices", "fastly_line_items", "fastly_regions", "fastly_extras"}
    fields = {f["name"]: f["type"] for f in tables["fastly_invoices"]["facets"]["schema"]["fields"]}
    assert fields["invoice_id"] == "VARCHAR" and fields["cost"] == "DECIMAL(38, 15)"
    if warehouse.dialect == "postgres":
        assert tables["fastly_invoices"]["namespace"] == "postgres://127.0.0.1:5432"
        assert tables["fastly_invoices"]["name"] == f"test.{warehouse.schema}.fastly_invoices"
    assert complete["get"]["outputs"] == [{"namespace": "file", "name": f"{tmp_path}/invoice.json", "facets": {}}]
    assert [(d["namespace"], d["name"]) for d in complete["focus"]["outputs"]] == [("file", f"{tmp_path}/focus.csv")]
    (tmp_path / "abridged.json").write_text(json.dumps(complete["load"], indent=1))
