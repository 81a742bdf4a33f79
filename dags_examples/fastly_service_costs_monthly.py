"""
Load last month's Fastly invoice with its cost per Fastly service, every month.

Runs at 00:00 UTC on the 1st: fetches the month that just ended (invoice, usage metrics, usage per
service) and loads, in one transaction, the invoice tables, ``fastly_usage``, ``fastly_service_usage``
and ``fastly_service_costs`` (every invoice line split across services, to the cent), and
``fastly_focus`` (FOCUS 1.2 rows, one per service of each line: ``ResourceId``) into the
``fastly_warehouse`` connection. Re-running a month replaces it; a run without a logical date loads the
month before the day it runs. Loads run one at a time (``max_active_tis_per_dag=1``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.operators.macros import previous_month
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

with DAG(
    dag_id="fastly_service_costs_monthly",
    schedule="@monthly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    tags=["fastly", "billing", "finops"],
    doc_md=__doc__,
    user_defined_macros={"previous_month": previous_month},
) as dag:
    InvoiceToSqlOperator(
        task_id="load_service_costs",
        year="{{ previous_month(dag_run).year }}",
        month="{{ previous_month(dag_run).month }}",
        warehouse_conn_id="fastly_warehouse",
        service_costs=True,
        # FOCUS rows too, one per service of each line (ResourceId), account names from GET /customer.
        focus=True,
        # One load at a time: a backfill runs many months at once, and a DuckDB file has one writer.
        max_active_tis_per_dag=1,
        retries=3,
        retry_delay=pendulum.duration(minutes=1),
        retry_exponential_backoff=True,
    )
