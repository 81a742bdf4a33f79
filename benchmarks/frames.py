"""Row 2: 200,000 line items into exact frames, versus pyarrow.Table.from_pylist with an explicit decimal schema."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from airflow_provider_fastly_billing.frames import NUMERIC_PRECISION, NUMERIC_SCALE, invoice_to_frames
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from benchmarks.common import compare

LINE_ITEMS = 200_000
TARGET = 1.5
MONEY = pa.decimal128(NUMERIC_PRECISION, NUMERIC_SCALE)
UTC = pa.timestamp("us", tz="UTC")


def big_invoice(line_items: int) -> dict[str, Any]:
    """A real-shaped v2 invoice (as the hook returns it) with ``line_items`` line items."""
    sim = FastlySimulator()
    invoice = parse_json(to_json(sim.invoice(sim.customer_id, 2025, 6)))
    items = invoice["line_items"]
    invoice["line_items"] = [dict(items[n % len(items)], line_number=n + 1) for n in range(line_items)]
    return invoice


def item_schema(items: list[dict[str, Any]]) -> pa.Schema:
    """The explicit Arrow schema of the line items: Decimals as decimal128(38, 15), the rest as they come."""
    sample = items[0]
    fields = []
    for name, value in sample.items():
        kind = type(value).__name__
        arrow = {"Decimal": MONEY, "int": pa.int64(), "bool": pa.bool_()}.get(kind, pa.string())
        fields.append(pa.field(name, arrow))
    return pa.schema(fields)


def run() -> dict[str, Any]:
    invoice = big_invoice(LINE_ITEMS)
    items = invoice["line_items"]
    schema = item_schema(items)
    frames = invoice_to_frames(invoice)
    exact = sum(frames.line_items["amount"].dropna()) == sum(i["amount"] for i in items)
    assert exact and str(frames.line_items["amount"].dtype).startswith("decimal128(38, 15)")
    result = compare(lambda: invoice_to_frames(invoice), lambda: pa.Table.from_pylist(items, schema=schema))
    return {**result, "line_items": LINE_ITEMS, "money_exact": exact, "target": f"<= {TARGET}",
            "met": result["ratio"] <= TARGET}  # fmt: skip
