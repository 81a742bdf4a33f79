"""
Template macros for the month a DAG run loads, for every kind of run.

A run triggered from the REST API or ``airflow dags trigger`` without a logical date has none, and
``ds`` is then undefined; ``dag_run.run_after`` (when the run was due) always exists. Register the
macros on the DAG and use them in templated fields::

    DAG(..., user_defined_macros={"previous_month": previous_month})
    InvoiceToSqlOperator(year="{{ previous_month(dag_run).year }}", month="{{ previous_month(dag_run).month }}")
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any


def run_date(dag_run: Any) -> datetime:
    """The date a run stands for: its logical date, or when it was due if it has none."""
    when: datetime = dag_run.logical_date or dag_run.run_after
    return when


def previous_month(dag_run: Any) -> date:
    """The first day of the month before the run's date: what a monthly run on the 1st loads."""
    return (run_date(dag_run).date().replace(day=1) - timedelta(days=1)).replace(day=1)
