"""
Row 7: the simulator's v3 invoices into DuckDB end to end, the provider versus dlt's ``rest_api_source``.

Both read every invoice through ``GET /billing/v3/invoices`` (cursor pages) and write a fresh DuckDB file.
Then each warehouse is asked how many invoices' line items do not add up to the invoice's total.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import duckdb

from airflow_provider_fastly_billing.frames import invoices_to_frames
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.warehouse import load_frames
from benchmarks.common import WORK, compare

TARGET = 1.0
PROVIDER_MISSES = """
SELECT count(*) FROM fastly_invoices i
WHERE i.cost <> (SELECT sum(amount) FROM fastly_line_items l WHERE l.load_key = i.load_key)
"""
DLT_MISSES = """
SELECT count(*) FROM fastly.invoices i
WHERE i.monthly_transaction_amount <> (
    SELECT sum(amount) FROM fastly.invoices__transaction_line_items l WHERE l._dlt_parent_id = i._dlt_id)
"""


def _misses(path: str, sql: str) -> tuple[int, int]:
    with duckdb.connect(path, read_only=True) as db:
        table = "fastly_invoices" if "fastly_invoices" in sql else "fastly.invoices"
        return db.execute(sql).fetchone()[0], db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def run() -> dict[str, Any]:
    # dlt reads its config from Airflow Variables when Airflow is installed: not here, where there is no metadata DB.
    os.environ["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] = "false"
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    try:
        import dlt
        from dlt.sources.rest_api import rest_api_source
    except ImportError:
        return {"status": "not run: dlt is not installed (pip install '.[bench]')", "met": None}
    folder = WORK / "peer"
    with FastlySimulator() as sim:
        os.environ["AIRFLOW_CONN_FASTLY_BENCH"] = json.dumps(sim.connection())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        runs = {"provider": 0, "peer": 0}
        config = {
            "client": {
                "base_url": sim.url,
                "headers": {"Fastly-Key": sim.token},
                "paginator": {"type": "cursor", "cursor_path": "meta.next_cursor", "cursor_param": "cursor"},
            },
            "resources": [
                {
                    "name": "invoices",
                    "endpoint": {"path": "billing/v3/invoices", "params": {"limit": 200}, "data_selector": "data"},
                },
            ],
        }

        def target(side: str) -> str:
            """A new DuckDB file for every run of a side."""
            runs[side] += 1
            return str(folder / f"{side}{runs[side]}.duckdb")

        def provider() -> None:
            os.environ["AIRFLOW_CONN_BENCH_PEER"] = json.dumps({"conn_type": "duckdb", "host": target("provider")})
            load_frames(invoices_to_frames(BillingHook("fastly_bench").list_invoices()), "bench_peer")

        def peer() -> None:
            pipeline = dlt.pipeline(
                pipeline_name="fastly_peer",
                destination=dlt.destinations.duckdb(target("peer")),
                dataset_name="fastly",
                pipelines_dir=str(folder / f"dlt{runs['peer']}"),
            )
            pipeline.run(rest_api_source(config))

        peer()  # warm both: dlt's first run imports its loader modules
        provider()
        result = compare(provider, peer)
        provider_misses, invoices = _misses(str(folder / f"provider{runs['provider']}.duckdb"), PROVIDER_MISSES)
        dlt_misses, dlt_invoices = _misses(str(folder / f"peer{runs['peer']}.duckdb"), DLT_MISSES)
    return {**result, "invoices": invoices, "dlt_invoices": dlt_invoices, "provider_misses": provider_misses,
            "dlt_misses": dlt_misses, "target": f"<= {TARGET}, 0 invoices whose lines miss the total",
            "met": result["ratio"] <= TARGET and provider_misses == 0}  # fmt: skip
