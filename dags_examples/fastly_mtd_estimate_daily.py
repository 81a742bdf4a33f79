"""
Snapshot the month-to-date estimate into the warehouse, every day.

The sensor waits in the triggerer while Fastly answers 202 (the estimate is being generated), then the
estimate is loaded as that day's snapshot: a re-run of the day replaces it, other days stay. The
customer id comes from the Airflow Variable ``fastly_customer_id``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
from airflow_provider_fastly_billing.sensors.billing import InvoiceMtdSensor

CUSTOMER = "{{ var.value.fastly_customer_id }}"

with DAG(
    dag_id="fastly_mtd_estimate_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["fastly", "billing"],
    doc_md=__doc__,
) as dag:
    ready = InvoiceMtdSensor(
        task_id="wait_for_estimate", customer_id=CUSTOMER, deferrable=True, poke_interval=5, timeout=900
    )
    load = InvoiceToSqlOperator(
        task_id="load_estimate",
        estimate_for=[CUSTOMER],
        warehouse_conn_id="fastly_warehouse",
        retries=3,
        retry_delay=pendulum.duration(minutes=1),
        retry_exponential_backoff=True,
    )
    ready >> load
