"""Row 1: 2,000 invoice fetches, BillingHook versus a bare requests.Session().get loop, over loopback."""

from __future__ import annotations

import json
import os
from typing import Any

import requests

from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import FastlySimulator
from benchmarks.common import ROUNDS, compare

CALLS = 2_000
TARGET = 1.10


def run() -> dict[str, Any]:
    per_round = CALLS // ROUNDS
    months = [(2025, m) for m in range(1, 13)]
    with FastlySimulator() as sim:
        os.environ["AIRFLOW_CONN_FASTLY_BENCH"] = json.dumps(sim.connection())
        hook = BillingHook("fastly_bench")
        session = requests.Session()
        headers = {"Fastly-Key": sim.token, "Accept": "application/json"}

        def provider() -> None:
            for n in range(per_round):
                hook.get_invoice(*months[n % 12])

        def baseline() -> None:
            for n in range(per_round):
                year, month = months[n % 12]
                session.get(f"{sim.url}/billing/v2/year/{year}/month/{month:02d}", headers=headers).json()

        provider()  # warm both connection pools
        baseline()
        result = compare(provider, baseline)
    return {**result, "calls": CALLS, "target": f"<= {TARGET}", "met": result["ratio"] <= TARGET}
