"""
Load invoices of several account customers (resellers) by id, in one run and one transaction.

The pairs come from the Airflow Variable ``fastly_reseller_invoices``, a JSON list of
``[customer_id, invoice_id]``. They are fetched by a small bounded pool that respects Fastly's rate
limit, and loaded together: all of them, or none.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator

with DAG(
    dag_id="fastly_reseller_invoices",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    render_template_as_native_obj=True,
    tags=["fastly", "billing"],
    doc_md=__doc__,
) as dag:
    InvoiceToSqlOperator(
        task_id="load_invoices",
        invoices="{{ var.json.fastly_reseller_invoices }}",
        warehouse_conn_id="fastly_warehouse",
        max_workers=8,
    )
