"""500 account customers' invoices at 50 ms a call: InvoiceToSqlOperator's pool versus one by one."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
from airflow_provider_fastly_billing.testing import FastlySimulator
from benchmarks.common import WORK, compare

CUSTOMERS = 500
LATENCY = 0.05
RATE_LIMIT = 1_200  # requests per window, as an account's hourly budget would be
ROUNDS = 1


def run() -> dict[str, Any]:
    folder = WORK / "fanout"
    with FastlySimulator(account_customers=CUSTOMERS, latency=LATENCY, rate_limit=RATE_LIMIT) as sim:
        os.environ["AIRFLOW_CONN_FASTLY_DEFAULT"] = json.dumps(sim.connection())
        os.environ["AIRFLOW_CONN_FASTLY_WAREHOUSE"] = json.dumps(
            {"conn_type": "duckdb", "host": str(folder / "w.duckdb")}
        )
        pairs = [(c, sim.invoice_ids(c)[-2]) for c in sim.customers]

        def fresh() -> None:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

        def load(workers: int) -> None:
            summary = InvoiceToSqlOperator(task_id=f"load_{workers}", invoices=pairs, max_workers=workers).execute({})
            assert len(summary["invoice_ids"]) == CUSTOMERS

        result = compare(lambda: load(8), lambda: load(1), ROUNDS, prepare=fresh)
        requests, limited, peak = len(sim.billing_requests()), sim.rate_limited, sim.max_in_flight
    met = result["ratio"] <= 0.2 and limited == 0
    return {**result, "customers": CUSTOMERS, "requests": requests, "rate_limited_429s": limited,
            "peak_concurrency": peak, "target": "<= 0.2 and no 429", "met": met}  # fmt: skip
