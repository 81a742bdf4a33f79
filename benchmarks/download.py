"""Row 9 (a guard beside the issue's rows): a 200 MB PDF through ``download_invoice`` streams to disk."""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_provider_fastly_billing.testing import FastlySimulator
from benchmarks.common import PEAK_RSS, WORK, child

SIZE = 200 << 20
TARGET_MB = 32
CHILD = (
    PEAK_RSS
    + """
import json, os, sys
import requests
from airflow_provider_fastly_billing.hooks.billing import BillingHook
url, token, mode, target = sys.argv[1:5]
hook = BillingHook("fastly_bench")
hook.download_invoice(target, fmt="csv", year=2025, month=1)  # warm-up: every import and the session
headers = {"Fastly-Key": token}
requests.get(url + "/billing/v2/year/2025/month/01", headers={**headers, "Accept": "text/csv"})
before = peak_mb()
if mode == "provider":
    hook.download_invoice(target, fmt="pdf", year=2025, month=1)
else:
    answer = requests.get(url + "/billing/v2/year/2025/month/01", headers={**headers, "Accept": "application/pdf"})
    with open(target, "wb") as out:
        out.write(answer.content)
print(json.dumps({"growth_mb": peak_mb() - before, "bytes": os.path.getsize(target)}))
"""
)


def _child(sim: FastlySimulator, mode: str) -> dict[str, Any]:
    target = WORK / f"{mode}.pdf"
    outcome = child(CHILD, sim.url, sim.token, mode, str(target))
    target.unlink()
    return outcome


def run() -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    with FastlySimulator(pdf_padding=SIZE) as sim:
        os.environ["AIRFLOW_CONN_FASTLY_BENCH"] = json.dumps(sim.connection())
        provider, baseline = _child(sim, "provider"), _child(sim, "baseline")
    assert provider["bytes"] == baseline["bytes"] >= SIZE
    return {
        "file_mb": provider["bytes"] / (1 << 20),
        "provider_growth_mb": provider["growth_mb"],
        "baseline_growth_mb": baseline["growth_mb"],
        "target": f"<= {TARGET_MB} MB growth",
        "met": provider["growth_mb"] <= TARGET_MB,
    }
