"""Parse cost: what importing each example DAG file adds to ``import airflow.sdk``, in fresh processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.common import ROOT

PROCESSES = 7
TARGET_MS = 50.0
CHILD = """
import sys, time
import airflow.sdk
started = time.perf_counter()
import runpy
runpy.run_path(sys.argv[1])
print((time.perf_counter() - started) * 1000)
"""
BASELINE_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="plain", schedule="@monthly", start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=True) as dag:
    EmptyOperator(task_id="nothing")
"""

ASSET_DAG = BASELINE_DAG.replace("import DAG", "import DAG, Asset").replace(
    '"nothing")', '"nothing", outlets=[Asset("postgres://127.0.0.1:5432/test/public/t")])'
)
"""The plain DAG with one asset outlet: an ``Asset`` makes Airflow load every installed provider's URI handler."""


def _median_ms(path: str) -> float:
    times = []
    for _ in range(PROCESSES):
        done = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def run() -> dict[str, Any]:
    # Two example DAGs read the warehouse connection when parsed, to spell their assets' URIs.
    warehouse = {"conn_type": "duckdb", "host": str(ROOT / "benchmarks" / ".work" / "parse.duckdb")}
    os.environ.setdefault("AIRFLOW_CONN_FASTLY_WAREHOUSE", json.dumps(warehouse))
    plain = ROOT / "benchmarks" / ".work" / "plain_dag.py"
    plain.parent.mkdir(parents=True, exist_ok=True)
    plain.write_text(BASELINE_DAG)
    baseline_ms = _median_ms(str(plain))
    with_asset = plain.with_name("asset_dag.py")
    with_asset.write_text(ASSET_DAG)
    results = {"plain_dag_ms": baseline_ms, "asset_dag_ms": _median_ms(str(with_asset))}
    for path in sorted((ROOT / "dags_examples").glob("fastly_*.py")):
        ms = _median_ms(str(path))
        results[path.stem] = {"ms_over_airflow_sdk": ms, "ratio_to_plain_dag": ms / baseline_ms,
                              "target": f"<= {TARGET_MS:.0f} ms", "met": ms <= TARGET_MS}  # fmt: skip
    return results
