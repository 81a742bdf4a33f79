"""
Row 5: peak RSS of InvoiceToSqlOperator loading 1,000 and 10,000 account customers' invoices (child processes).

Into PostgreSQL and into DuckDB. DuckDB keeps a transaction's uncommitted rows in its own memory until the
commit, so there the engine's share grows with the load; the provider's own share is what PostgreSQL shows.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import psycopg2

from airflow_provider_fastly_billing.testing import FastlySimulator
from benchmarks.common import PEAK_RSS, WORK, child

WAREHOUSES = os.environ.get("BENCH_FANOUT_WAREHOUSES", "postgres,duckdb").split(",")
"""The warehouses measured (``BENCH_FANOUT_WAREHOUSES=duckdb``: DuckDB only, no PostgreSQL needed)."""
COUNTS = (1_000, 10_000)
PER_CUSTOMER = 34
TARGET_MB = 400
TARGET_GROWTH = 0.25
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
SCHEMA = "bench_fanout"
CHILD = (
    PEAK_RSS
    + """
import json, sys
from datetime import datetime, timezone
from types import SimpleNamespace
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
pairs = json.load(open(sys.argv[1]))
run = SimpleNamespace(logical_date=None, run_after=datetime.now(timezone.utc))
operator = InvoiceToSqlOperator(task_id="fan", invoices=pairs, max_workers=8, schema=sys.argv[2] or None)
summary = operator.execute({"dag_run": run})
print(json.dumps({"peak_mb": peak_mb(), "invoices": len(summary["invoice_ids"]), "rows": summary["rows"]}))
"""
)


def _fresh(warehouse: str) -> str:
    """An empty warehouse of that kind behind ``fastly_warehouse``; the schema the operator writes into."""
    folder = WORK / "fanout"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if warehouse == "duckdb":
        conn = {"conn_type": "duckdb", "host": str(folder / "w.duckdb")}
        os.environ["AIRFLOW_CONN_FASTLY_WAREHOUSE"] = json.dumps(conn)
        return ""
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    os.environ["AIRFLOW_CONN_FASTLY_WAREHOUSE"] = json.dumps(conn)
    _drop()
    return SCHEMA


def _drop() -> None:
    db = psycopg2.connect(**POSTGRES)
    db.autocommit = True
    db.cursor().execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    db.close()


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with FastlySimulator(account_customers=-(-max(COUNTS) // PER_CUSTOMER)) as sim:
        pairs = [(c, i) for c in sim.customers for i in sim.invoice_ids(c)[:PER_CUSTOMER]]
        os.environ["AIRFLOW_CONN_FASTLY_DEFAULT"] = json.dumps(sim.connection())
        for warehouse in WAREHOUSES:
            outcome: dict[str, Any] = {}
            for count in COUNTS:
                schema = _fresh(warehouse)
                listed = WORK / "fanout" / "pairs.json"
                listed.write_text(json.dumps(pairs[:count]))
                outcome[f"invoices_{count}"] = child(CHILD, str(listed), schema)
                assert outcome[f"invoices_{count}"]["invoices"] == count, outcome
            low, high = (outcome[f"invoices_{c}"]["peak_mb"] for c in COUNTS)
            growth = high / low - 1
            results[warehouse] = {**outcome, "growth": growth, "met": high <= TARGET_MB and growth <= TARGET_GROWTH}
    if "postgres" in WAREHOUSES:
        _drop()
    return {**results, "target": f"<= {TARGET_MB} MB at {COUNTS[1]:,} invoices, growth <= 25% from {COUNTS[0]:,}"}
