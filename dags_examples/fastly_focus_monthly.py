"""
Load last month's Fastly invoice into the warehouse, then export it as a FOCUS 1.2 file, every month.

The FOCUS file (FinOps Open Cost and Usage Specification) is what FinOps tools import next to the
AWS, Azure and Google Cloud bills. It goes to the ``fastly_focus_destination`` Airflow Variable, a
folder path or URL (``s3://bucket/focus``), default ``/tmp/fastly_focus``, one file per month:
``fastly-2025-02.parquet``. The export fetches the invoice itself, so it does not depend on the
warehouse; it runs after the load so both describe the same answer of the API.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.operators.focus import FocusExportOperator
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

# The run at the 1st of a month handles the month before: the day before ``ds``.
YEAR = "{{ macros.ds_add(ds, -1)[:4] }}"
MONTH = "{{ macros.ds_add(ds, -1)[5:7] }}"

with DAG(
    dag_id="fastly_focus_monthly",
    schedule="@monthly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["fastly", "billing", "focus"],
    doc_md=__doc__,
) as dag:
    load = InvoiceToSqlOperator(
        task_id="load_invoice",
        year=YEAR,
        month=MONTH,
        warehouse_conn_id="fastly_warehouse",
        retries=3,
        retry_delay=pendulum.duration(minutes=10),
    )
    export = FocusExportOperator(
        task_id="export_focus",
        year=YEAR,
        month=MONTH,
        destination="{{ var.value.get('fastly_focus_destination', '/tmp/fastly_focus') }}"
        "/fastly-{{ macros.ds_add(ds, -1)[:7] }}.parquet",
        retries=3,
        retry_delay=pendulum.duration(minutes=10),
    )
    load >> export
