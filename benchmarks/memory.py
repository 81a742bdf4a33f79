"""
Row 6: one ~200 MB JSON invoice fetched, turned into frames and loaded into DuckDB: peak RSS growth per body.

The path the transfer operator takes: ``get_invoice_parts`` and ``invoice_parts_to_frames``, an answer that
large decoded a part of its line items at a time.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from benchmarks.common import PEAK_RSS, WORK, child
from benchmarks.frames import big_invoice

BODY_MB = 200
TARGET = 3.0
CHILD = (
    PEAK_RSS
    + """
import json, sys
from airflow_provider_fastly_billing.frames import invoice_parts_to_frames
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.warehouse import load_frames
hook = BillingHook("fastly_bench")
load_frames(invoice_parts_to_frames(hook.get_invoice_parts(2025, 1)), "fastly_bench_warehouse")  # warm-up
before = peak_mb()
rows = load_frames(invoice_parts_to_frames(hook.get_invoice_parts(2025, 6)), "fastly_bench_warehouse")
after = peak_mb()
print(json.dumps({"growth_mb": after - before, "peak_mb": after, "line_items": rows["line_items"]}))
"""
)


def run() -> dict[str, Any]:
    per_item = len(to_json(big_invoice(1_000))) / 1_000
    invoice = big_invoice(int(BODY_MB * (1 << 20) / per_item))
    body_mb = len(to_json(invoice)) / (1 << 20)
    folder = WORK / "memory"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with FastlySimulator(fixed_invoices={(2025, 6): invoice}) as sim:
        conn = {**sim.connection(), "extra": json.dumps({"max_body_bytes": 1 << 30})}
        os.environ["AIRFLOW_CONN_FASTLY_BENCH"] = json.dumps(conn)
        os.environ["AIRFLOW_CONN_FASTLY_BENCH_WAREHOUSE"] = json.dumps(
            {"conn_type": "duckdb", "host": str(folder / "w.duckdb")}
        )
        outcome = child(CHILD)
    ratio = outcome["growth_mb"] / body_mb
    return {**outcome, "body_mb": body_mb, "ratio": ratio, "target": f"<= {TARGET}x the body", "met": ratio <= TARGET}
