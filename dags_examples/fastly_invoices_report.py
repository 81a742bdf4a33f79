"""
Export each month of Fastly invoices as a FOCUS file as soon as ``fastly_invoices_monthly`` has loaded it.

Scheduled on the ``fastly_invoices`` table asset of the ``fastly_warehouse`` connection with a
partitioned timetable: every load's asset event carries the month it loaded as its partition key
(``2025-02``), and this DAG runs once per key, for exactly that month, whether the load was the monthly
run, a backfill or a manual re-run. The file goes to the ``fastly_focus_destination`` Airflow Variable
(default ``/tmp/fastly_focus``): ``fastly-2025-02.csv``. Needs Airflow >= 3.3 (a task's events get
partition keys there).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, PartitionedAssetTimetable, StartOfMonthMapper

from airflow_provider_fastly_billing.assets import warehouse_assets
from airflow_provider_fastly_billing.operators.focus import FocusExportOperator

INVOICES = warehouse_assets("fastly_warehouse")["invoices"]

with DAG(
    dag_id="fastly_invoices_report",
    # The partition key of the load's event is already the month: the mapper checks and keeps it.
    schedule=PartitionedAssetTimetable(
        assets=INVOICES, default_partition_mapper=StartOfMonthMapper(input_format="%Y-%m")
    ),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    tags=["fastly", "billing", "focus"],
    doc_md=__doc__,
) as dag:
    FocusExportOperator(
        task_id="export_focus",
        year="{{ partition_key[:4] }}",
        month="{{ partition_key[5:7] }}",
        fmt="csv",
        destination="{{ var.value.get('fastly_focus_destination', '/tmp/fastly_focus') }}"
        "/fastly-{{ partition_key }}.csv",
        retries=3,
        retry_delay=pendulum.duration(minutes=10),
    )
