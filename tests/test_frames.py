"""Frames: every documented field in its column, exact money, unknown keys kept, any invoice shape."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_fastly_billing.exceptions import FastlyDataError
from airflow_provider_fastly_billing.frames import (
    NUMERIC_SCALE,
    SCHEMA,
    V2_INVOICE_ITEM,
    InvoiceFrames,
    estimate_to_frames,
    invoice_to_frames,
)
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json

DATA = Path(__file__).parent / "data"
FETCHED = datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc)


def load(name: str) -> dict:
    return parse_json((DATA / name).read_bytes())


@pytest.fixture(scope="module")
def simulator() -> FastlySimulator:
    return FastlySimulator(account_customers=3)


def wire(data: dict) -> dict:
    """What the hook returns for a body the simulator sends."""
    return parse_json(to_json(data))


def test_tables_have_exactly_the_documented_columns(simulator: FastlySimulator) -> None:
    frames = invoice_to_frames(wire(simulator.invoice(simulator.customer_id, 2025, 8)), FETCHED)
    for name, frame in frames.tables.items():
        assert list(frame.columns) == list(SCHEMA[name]), name
    assert str(frames.invoices["period_start"].dtype).startswith("datetime64")
    assert frames.invoices["period_start"][0] == pd.Timestamp("2025-08-01", tz="UTC")
    assert frames.line_items["line_number"].dtype == "Int64"


def test_every_documented_line_item_field_lands_in_its_column(simulator: FastlySimulator) -> None:
    invoice = wire(simulator.invoice(simulator.customers[1], 2025, 9))
    items = invoice_to_frames(invoice, FETCHED).line_items
    assert len(items) == len(invoice["line_items"])
    for row, item in zip(items.to_dict("records"), invoice["line_items"], strict=False):
        for field in V2_INVOICE_ITEM:
            value, expected = row[field], item[field]
            if field.endswith("_at"):
                expected = None if expected is None else pd.Timestamp(expected)
                value = None if pd.isna(value) else value
            elif expected is not None and SCHEMA["line_items"][field] == "numeric":
                expected = Decimal(expected)
            assert value == expected, field
        assert pd.isna(row["extra"])


def test_totals_equal_the_sum_of_line_items_exactly(simulator: FastlySimulator) -> None:
    for customer in simulator.customers:
        frames = invoice_to_frames(wire(simulator.invoice(customer, 2025, 11)), FETCHED)
        row = frames.invoices.iloc[0]
        assert sum(frames.line_items["amount"]) == row["cost"]
        assert row["bandwidth_cost"] + row["requests_cost"] == row["incurred_cost"]
        assert sum(frames.extras["recurring"]) == row["extras_cost"]
        assert all(isinstance(v, Decimal) for v in frames.line_items["amount"])


def test_regions_one_row_per_region_metric_tier(simulator: FastlySimulator) -> None:
    invoice = wire(simulator.invoice(simulator.customer_id, 2025, 2))
    regions = invoice_to_frames(invoice, FETCHED).regions
    expected = sum(len(m["tiers"]) for r in invoice["regions"].values() for k, m in r.items() if k != "cost")
    assert len(regions) == expected
    usa = regions[regions["region"] == "usa"]
    assert set(usa["metric"]) == {"bandwidth", "requests"}
    assert sum(usa["tier_total"]) == Decimal(str(invoice["regions"]["usa"]["cost"])).quantize(Decimal("0.01"))


def test_real_answer_with_string_amounts_and_extra_total_keys() -> None:
    frames = invoice_to_frames(load("v2_invoice_meltano_2018_02.json"), FETCHED)
    invoice = frames.invoices.iloc[0]
    assert invoice["invoice_id"] == "2433860" and invoice["status"] == "Paid" and pd.isna(invoice["vendor_state"])
    assert invoice["cost"] == Decimal("575.26")
    assert sum(frames.line_items["amount"]) == Decimal("575.26")
    assert frames.line_items["units"][0] == Decimal("143.656927205")
    raw = json.loads(invoice["raw"])
    assert raw["total"]["percentile_cost"] == 0 and raw["total"]["commit_shortfall"] == 0
    assert "line_items" not in raw
    assert frames.extras.to_dict("records")[0]["name"] == "Shared TLS Certificate"


def test_unknown_keys_land_in_extra_and_raw(simulator: FastlySimulator) -> None:
    invoice = wire(simulator.invoice(simulator.customer_id, 2025, 4))
    invoice["brand_new_top_level"] = {"x": 1}
    invoice["line_items"][2]["carbon_grams"] = Decimal("12.5")
    invoice["total"]["extras"][0]["tax_code"] = "S1"
    frames = invoice_to_frames(invoice, FETCHED)
    assert json.loads(frames.line_items["extra"][2]) == {"carbon_grams": "12.5"}
    assert frames.line_items["extra"].isna().sum() == len(invoice["line_items"]) - 1
    assert json.loads(frames.invoices["raw"][0])["brand_new_top_level"] == {"x": 1}
    assert json.loads(frames.extras["extra"][0]) == {"tax_code": "S1"}


def test_estimate_is_a_snapshot_of_the_day(simulator: FastlySimulator) -> None:
    estimate = wire(simulator.estimate(simulator.customer_id, 2025, 6))
    frames = estimate_to_frames(estimate, FETCHED, snapshot_date=date(2025, 6, 20))
    assert frames.load_keys == [f"v2/estimate/{simulator.customer_id}/2025-06/2025-06-20"]
    assert frames.invoices["is_estimate"].all() and frames.line_items["is_estimate"].all()
    assert frames.line_items["per_unit_cost"].notna().all() and frames.line_items["rate_per_unit"].isna().all()
    assert sum(frames.line_items["amount"]) == frames.invoices["cost"][0]


def test_v3_invoice_and_month_to_date() -> None:
    invoice = invoice_to_frames(load("v3_invoice.synthetic.json"), FETCHED)
    row = invoice.invoices.iloc[0]
    assert (row["api_version"], row["statement_number"], row["currency_code"]) == ("v3", "GRTEST4183280", "USD")
    assert row["cost"] == Decimal("182.5") == sum(invoice.line_items["amount"])
    assert list(invoice.line_items["usage_type"]) == ["Bandwidth", "Requests", "Unit"]
    mtd = estimate_to_frames(load("v3_mtd.synthetic.json"), FETCHED)
    assert mtd.invoices["cost"][0] == Decimal("41.25")  # sent as a string
    assert mtd.load_keys == ["v3/estimate/x4xCwxxJxGCx123Rx5xTx/2024-06/2026-11-02"]


def test_concat_keeps_every_load() -> None:
    frames = InvoiceFrames.concat(
        [
            invoice_to_frames(load("v2_invoice_meltano_2018_02.json")),
            invoice_to_frames(load("v3_invoice.synthetic.json")),
        ]
    )
    assert len(frames.load_keys) == 2 and len(frames.line_items) == 14 + 3
    assert InvoiceFrames.concat([]).invoices.empty


money = st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False, allow_infinity=False)
amount_text = money.map(str)
no_nul = st.characters(blacklist_characters="\x00")
text = st.text(alphabet=no_nul)
junk = st.one_of(st.none(), st.text(max_size=8), st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
line_item = st.fixed_dictionaries(
    {"amount": st.one_of(money, amount_text)},
    optional={
        "units": st.one_of(money, amount_text, st.none(), st.integers(-(10**20), 10**20)),
        "rate_per_unit": st.one_of(money, st.none()),
        "description": st.one_of(text, st.none(), st.integers()),
        "line_number": st.one_of(st.integers(-5, 10**6), st.none(), st.just("7")),
        "created_at": st.one_of(st.just("2025-01-31T10:00:00Z"), st.none(), st.just("2025-02-28")),
        "service_no": st.one_of(st.integers(0, 10**9), st.none()),
        "surprise": junk,
    },
)
invoice_doc = st.fixed_dictionaries(
    {
        "invoice_id": st.one_of(st.integers(0, 10**12), st.text(alphabet="0123456789", min_size=1, max_size=12)),
        "customer_id": st.text(alphabet="abcXYZ0123", min_size=1, max_size=22),
        "line_items": st.lists(line_item, max_size=30),
    },
    optional={
        "start_time": st.one_of(st.none(), st.just("2025-02-01T00:00:00Z")),
        "status": st.one_of(st.fixed_dictionaries({"status": st.sampled_from(["Paid", "Pending"])}), st.none()),
        "total": st.fixed_dictionaries(
            {},
            optional={
                "cost": money,
                "extras": st.lists(st.fixed_dictionaries({"name": text}, optional={"recurring": money}), max_size=3),
            },
        ),
        "regions": st.dictionaries(
            st.text(alphabet=no_nul, max_size=6),
            st.fixed_dictionaries(
                {},
                optional={
                    "cost": money,
                    "bandwidth": st.fixed_dictionaries(
                        {"total": money, "tiers": st.lists(st.fixed_dictionaries({"total": money}), max_size=3)}
                    ),
                },
            ),
            max_size=3,
        ),
        "vendor_state": st.one_of(st.none(), text, st.integers()),
    },
)


@settings(max_examples=150, deadline=None)
@given(invoice_doc)
def test_any_invoice_shape_gives_frames_with_exact_sums(doc: dict) -> None:
    frames = invoice_to_frames(doc, FETCHED)
    assert len(frames.invoices) == 1
    assert len(frames.line_items) == len(doc["line_items"])
    assert len(frames.extras) == len((doc.get("total") or {}).get("extras") or [])
    expected = sum((Decimal(str(item["amount"])) for item in doc["line_items"]), Decimal(0))
    assert sum(frames.line_items["amount"], Decimal(0)) == expected
    surprises = [i for i in doc["line_items"] if "surprise" in i]
    assert frames.line_items["extra"].notna().sum() == len(surprises)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("143.656927205", "143.656927205"),
        ("-40.22", "-40.22"),
        ("+3", "3"),
        ("1E+2", "100"),
        ("0.5e-3", "0.0005"),
        (Decimal("5.140000000000001"), "5.140000000000001"),
        (Decimal("1.500000000000000000000"), "1.5"),
        (Decimal("1E+22"), "10000000000000000000000"),
        ("9" * 23 + "." + "9" * NUMERIC_SCALE, "9" * 23 + "." + "9" * NUMERIC_SCALE),
        (10**22, "10000000000000000000000"),
        (0.1, "0.1"),
        (Decimal("-0E-30"), "0"),
    ],
)
def test_plain_decimal_numbers_are_read_exactly(sent: object, stored: str) -> None:
    """Strings in plain decimal notation, ints, Decimals and floats within DECIMAL(38, 15) keep their value."""
    invoice = {"invoice_id": 1, "customer_id": "abc", "line_items": [{"line_number": 1, "amount": sent}]}
    (amount,) = invoice_to_frames(invoice, FETCHED).line_items["amount"]
    assert type(amount) is Decimal and amount == Decimal(stored)


NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?", re.ASCII)
bad_number = st.one_of(
    st.text(max_size=12).filter(lambda t: not NUMBER.fullmatch(t)),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"), float("nan"), float("inf")]),
    st.integers(NUMERIC_SCALE + 1, 40).map(lambda n: Decimal("0." + "1" * n)),
    st.integers(24, 60).map(lambda n: 10 ** (n - 1)),
    st.integers(24, 60).map(lambda n: f"-{10 ** (n - 1)}.5"),
)


@settings(max_examples=150, deadline=None)
@given(invoice_doc.filter(lambda doc: doc["line_items"]), st.data())
def test_a_bad_number_is_refused_naming_invoice_line_and_field(doc: dict, data: st.DataObject) -> None:
    """Whatever the rest of the invoice holds, one bad number fails the whole invoice, never a NULL or a rounding."""
    n = data.draw(st.integers(0, len(doc["line_items"]) - 1))
    field = data.draw(st.sampled_from(["amount", "units", "rate_per_unit", "plan_no", "usage_type_no"]))
    doc["line_items"][n][field] = data.draw(bad_number)
    number = doc["line_items"][n].get("line_number")
    line = number if type(number) is int else n + 1
    index = "" if line == n + 1 else f" (line_items[{n}])"
    expected = f"invoice {doc['invoice_id']} (customer {doc['customer_id']}): line {line} of line_items{index}, "
    with pytest.raises(FastlyDataError) as error:
        invoice_to_frames(doc, FETCHED)
    assert str(error.value).startswith(f"{expected}field {field}: ")
