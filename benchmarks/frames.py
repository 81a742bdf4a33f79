"""An invoice with 200,000 line items into frames, versus pandas.json_normalize of its line items."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd

from airflow_provider_fastly_billing.frames import invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from benchmarks.common import compare

LINE_ITEMS = 200_000
ROUNDS = 5


def big_invoice(line_items: int) -> dict[str, Any]:
    """A real-shaped invoice (as the hook returns it) with ``line_items`` line items."""
    sim = FastlySimulator()
    invoice = parse_json(to_json(sim.invoice(sim.customer_id, 2025, 6)))
    items = invoice["line_items"]
    invoice["line_items"] = [dict(items[n % len(items)], line_number=n + 1) for n in range(line_items)]
    return invoice


def run() -> dict[str, Any]:
    invoice = big_invoice(LINE_ITEMS)
    frames = invoice_to_frames(invoice)
    exact = sum(frames.line_items["amount"]) == sum(i["amount"] for i in invoice["line_items"])
    assert exact and all(type(v) is Decimal for v in frames.line_items["amount"])
    result = compare(lambda: invoice_to_frames(invoice), lambda: pd.json_normalize(invoice["line_items"]), ROUNDS)
    return {**result, "line_items": LINE_ITEMS, "money_exact": exact, "target": "<= 1.0", "met": result["ratio"] <= 1.0}
