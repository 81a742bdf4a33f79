"""Row 5: peak RSS of InvoiceToSqlOperator loading 1,000 and 10,000 account customers' invoices (child processes)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from airflow_provider_fastly_billing.testing import FastlySimulator
from benchmarks.common import WORK, child

COUNTS = (1_000, 10_000)
TARGET_MB = 400
TARGET_GROWTH = 0.25
CHILD = """
import json, resource, sys
from datetime import datetime, timezone
from types import SimpleNamespace
from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
pairs = json.load(open(sys.argv[1]))
run = SimpleNamespace(logical_date=None, run_after=datetime.now(timezone.utc))
summary = InvoiceToSqlOperator(task_id="fan", invoices=pairs, max_workers=8).execute({"dag_run": run})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mb": peak, "invoices": len(summary["invoice_ids"]), "rows": summary["rows"]}))
"""


def run() -> dict[str, Any]:
    folder = WORK / "fanout"
    per_customer = 34
    with FastlySimulator(account_customers=-(-max(COUNTS) // per_customer)) as sim:
        pairs = [(c, i) for c in sim.customers for i in sim.invoice_ids(c)[:per_customer]]
        os.environ["AIRFLOW_CONN_FASTLY_DEFAULT"] = json.dumps(sim.connection())
        results: dict[str, Any] = {}
        for count in COUNTS:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            os.environ["AIRFLOW_CONN_FASTLY_WAREHOUSE"] = json.dumps(
                {"conn_type": "duckdb", "host": str(folder / "w.duckdb")}
            )
            listed = folder / "pairs.json"
            listed.write_text(json.dumps(pairs[:count]))
            outcome = child(CHILD, str(listed))
            assert outcome["invoices"] == count, outcome
            results[f"invoices_{count}"] = outcome
    low, high = (results[f"invoices_{c}"]["peak_mb"] for c in COUNTS)
    growth = high / low - 1
    return {**results, "growth": growth, "target": f"<= {TARGET_MB} MB at {COUNTS[1]:,}, growth <= 25%",
            "met": high <= TARGET_MB and growth <= TARGET_GROWTH}  # fmt: skip
