"""A 200 MB PDF through download_invoice: peak RSS growth of a child process, against reading it whole."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from airflow_provider_fastly_billing.testing import FastlySimulator
from benchmarks.common import WORK

SIZE = 200 << 20
TARGET_MB = 32
CHILD = """
import json, os, resource, sys
import requests
from airflow_provider_fastly_billing.hooks.billing import BillingHook
url, token, mode, target = sys.argv[1:5]
os.environ["AIRFLOW_CONN_FASTLY_BENCH"] = json.dumps({"conn_type": "fastly", "host": url, "password": token})
hook = BillingHook("fastly_bench")
hook.download_invoice(target, fmt="csv", year=2025, month=1)   # warm-up: every import and the session
requests.get(url + "/billing/v2/year/2025/month/01", headers={"Fastly-Key": token, "Accept": "text/csv"})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "provider":
    hook.download_invoice(target, fmt="pdf", year=2025, month=1)
else:
    headers = {"Fastly-Key": token, "Accept": "application/pdf"}
    answer = requests.get(url + "/billing/v2/year/2025/month/01", headers=headers)
    with open(target, "wb") as out:
        out.write(answer.content)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "bytes": os.path.getsize(target)}))
"""


def _child(sim: FastlySimulator, mode: str) -> dict[str, Any]:
    target = WORK / f"{mode}.pdf"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, sim.url, sim.token, mode, str(target)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    target.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    with FastlySimulator(pdf_padding=SIZE) as sim:
        provider, baseline = _child(sim, "provider"), _child(sim, "baseline")
    assert provider["bytes"] == baseline["bytes"] >= SIZE
    return {
        "file_mb": provider["bytes"] / (1 << 20),
        "provider_growth_mb": provider["growth_mb"],
        "baseline_growth_mb": baseline["growth_mb"],
        "ratio": provider["growth_mb"] / baseline["growth_mb"],
        "target": f"<= {TARGET_MB} MB growth",
        "met": provider["growth_mb"] <= TARGET_MB,
    }
