"""
Load last month's Fastly invoice into the warehouse, every month.

Runs at 00:00 UTC on the 1st and loads the month that just ended into the ``fastly_warehouse``
connection (a DuckDB file by default). Re-running a month replaces it; with ``catchup=True`` a
backfill of past months is one command:
``airflow backfill create --dag-id fastly_invoices_monthly --from-date 2025-01-01 --to-date 2025-12-31``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

with DAG(
    dag_id="fastly_invoices_monthly",
    schedule="@monthly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["fastly", "billing"],
    doc_md=__doc__,
) as dag:
    InvoiceToSqlOperator(
        task_id="load_invoice",
        # The run at the 1st of a month loads the month before: the day before ``ds``.
        year="{{ macros.ds_add(ds, -1)[:4] }}",
        month="{{ macros.ds_add(ds, -1)[5:7] }}",
        warehouse_conn_id="fastly_warehouse",
        retries=3,
        retry_delay=pendulum.duration(minutes=10),
    )
