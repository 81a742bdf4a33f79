"""Run a DAG file for real with ``dag.test()`` and read back what a user would check."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum

HEADER = """\
import pendulum
from airflow.sdk import DAG

START = pendulum.datetime(2024, 1, 1, tz="UTC")
"""


@dataclass
class Run:
    """A finished DAG run: its state, per task states, XComs and rendered template fields."""

    state: str
    states: dict[str, str]
    xcom: dict[str, Any]
    rendered: dict[str, dict[str, Any]]


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_dag_file(path: Path, logical_date: pendulum.DateTime | None = None) -> Run:
    """Run the ``dag`` of a DAG file in the configured DAGs folder."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = _load(path)
    dr = dag.test(logical_date=logical_date or pendulum.datetime(2025, 3, 1, tz="UTC"))
    with create_session() as session:
        xcom = {
            x.task_id: XComModel.deserialize_value(x)
            for x in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=dr.run_id, key="return_value")
        }
        rendered = {
            r.task_id: r.rendered_fields
            for r in session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag.dag_id, run_id=dr.run_id)
        }
        states = {ti.task_id: ti.state for ti in dr.get_task_instances(session=session)}
    return Run(dr.state, states, xcom, rendered)


def run_dag(dag_id: str, body: str, logical_date: pendulum.DateTime | None = None) -> Run:
    """Write a DAG file (``body`` defines tasks inside ``with DAG(...)``) into the DAGs folder and run it."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    source = HEADER + textwrap.dedent(body).replace("DAG_ID", repr(dag_id))
    path.write_text(source)
    return run_dag_file(path, logical_date)
