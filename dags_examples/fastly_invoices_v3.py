"""
Load every Billing v3 invoice of last month into the warehouse, every month.

Billing v3 is the API Fastly supports today (the v2 endpoints were deprecated in February 2025). The
run at the 1st of a month lists every invoice whose billing period started in the month before
(following the API's cursor pages) and loads them into the same tables as ``fastly_invoices_monthly``,
told apart by ``api_version = 'v3'``. Re-running a month replaces it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.operators.macros import previous_month
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

with DAG(
    dag_id="fastly_invoices_v3",
    schedule="@monthly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["fastly", "billing"],
    doc_md=__doc__,
    user_defined_macros={"previous_month": previous_month},
) as dag:
    InvoiceToSqlOperator(
        task_id="load_invoices",
        api_version="v3",
        year="{{ previous_month(dag_run).year }}",
        month="{{ previous_month(dag_run).month }}",
        warehouse_conn_id="fastly_warehouse",
        # One load at a time: a backfill runs many months at once, and a DuckDB file has one writer.
        max_active_tis_per_dag=1,
        retries=3,
        retry_delay=pendulum.duration(minutes=1),
        retry_exponential_backoff=True,
    )
