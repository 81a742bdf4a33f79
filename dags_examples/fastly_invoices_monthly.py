"""
Load last month's Fastly invoice into the warehouse, every month.

Runs at 00:00 UTC on the 1st and loads the month that just ended into the ``fastly_warehouse``
connection (a DuckDB file by default); a run triggered without a logical date (REST API, ``airflow
dags trigger``) loads the month before the day it runs. Re-running a month replaces it. A backfill of
the twelve months of 2025 (the runs of 2025-02-01 to 2026-01-01) is one command:
``airflow backfill create --dag-id fastly_invoices_monthly --from-date 2025-02-01 --to-date 2026-01-01``.
Loads run one at a time (``max_active_tis_per_dag=1``): a backfill starts many runs at once.

Each load announces the four tables it wrote as assets (partition key: the month, ``2025-02``);
``fastly_invoices_report`` runs on them, for that month.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.assets import warehouse_assets
from airflow_provider_fastly_billing.operators.macros import previous_month
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

WAREHOUSE = "fastly_warehouse"

with DAG(
    dag_id="fastly_invoices_monthly",
    schedule="@monthly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["fastly", "billing"],
    doc_md=__doc__,
    user_defined_macros={"previous_month": previous_month},
) as dag:
    InvoiceToSqlOperator(
        task_id="load_invoice",
        # The run at the 1st of a month loads the month before; an API-triggered run (no logical
        # date) loads the month before the day it was triggered.
        year="{{ previous_month(dag_run).year }}",
        month="{{ previous_month(dag_run).month }}",
        warehouse_conn_id=WAREHOUSE,
        # The tables it writes, as assets (URIs read from the connection): the events name the month.
        outlets=list(warehouse_assets(WAREHOUSE).values()),
        # One load at a time: a backfill runs many months at once, and a DuckDB file has one writer.
        max_active_tis_per_dag=1,
        retries=3,
        retry_delay=pendulum.duration(minutes=1),
        retry_exponential_backoff=True,
    )
