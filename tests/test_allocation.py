"""Cost per service: twelve months of simulator invoices split across services, exactly, and the matching rules."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_fastly_billing import frames, usage
from airflow_provider_fastly_billing.allocation import SCHEMA, AllocationError, allocate, largest_remainder
from airflow_provider_fastly_billing.api.usage import service_usage_queries
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import FastlySimulator

DATA = Path(__file__).parent / "data"
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]
LINE = ["invoice_id", "line_number"]


@dataclass(frozen=True)
class Year:
    """Twelve months of one customer, fetched from the simulator through the hook."""

    customer_id: str
    usage: pd.DataFrame
    service_usage: pd.DataFrame
    invoices: dict[str, frames.InvoiceFrames]

    def costs(self, version: str) -> pd.DataFrame:
        f = self.invoices[version]
        return allocate(f.invoices, f.line_items, self.usage, self.service_usage)


def fetch_year(share: Decimal) -> Year:
    with FastlySimulator(unattributed_share=share) as sim, pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_FASTLY_DEFAULT", json.dumps(sim.connection()))
        hook = BillingHook()
        items = hook.get_usage_metrics(MONTHS[0], MONTHS[-1])
        services = [row for query in service_usage_queries(items) for row in hook.list_service_usage(**query)]
        v2 = [hook.get_invoice(2025, m) for m in range(1, 13)]
        v3 = [i for i in hook.list_invoices("2025-01-01", "2025-12-01") if i["customer_id"] == sim.customer_id]
        assert len(v3) == 12
        return Year(
            sim.customer_id,
            usage.usage_to_frames(items, sim.customer_id),
            usage.service_usage_to_frames(services),
            {"v2": frames.invoices_to_frames(v2), "v3": frames.invoices_to_frames(v3)},
        )


@pytest.fixture(scope="module")
def year() -> Year:
    return fetch_year(Decimal(0))


@pytest.fixture(scope="module")
def year_5() -> Year:
    return fetch_year(Decimal("0.05"))


def line_amounts(year: Year, version: str) -> pd.Series:
    return year.invoices[version].line_items.set_index(LINE)["amount"]


def usage_based(costs: pd.DataFrame) -> pd.DataFrame:
    return costs[costs["usage_type"].notna()]


@pytest.mark.parametrize("version", ["v2", "v3"])
@pytest.mark.parametrize("share", ["0", "0.05"])
def test_every_line_is_split_into_rows_that_add_up_to_it_exactly(year, year_5, version, share) -> None:
    data = year if share == "0" else year_5
    costs = data.costs(version)
    lines = line_amounts(data, version)
    sums = costs.groupby(LINE)["amount"].sum()
    assert len(lines) >= 12 * 7
    assert sorted(sums.index) == sorted(lines.index)
    assert all(type(a) is Decimal for a in costs["amount"])
    assert sums.to_dict() == lines.to_dict(), "every line: allocated + unallocated == amount, in Decimal"
    assert costs["month"].tolist() and set(costs["month"]) == set(MONTHS)
    assert list(costs.columns) == list(SCHEMA["service_costs"])


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_usage_cost_goes_to_named_services_when_fastly_attributes_all_usage(year, version) -> None:
    costs = usage_based(year.costs(version))
    named = costs[costs["allocated"]]
    share = sum(named["amount"]) / sum(costs["amount"])
    assert share >= Decimal("0.95")
    assert share == 1
    assert named["service_name"].notna().all() and named["service_id"].notna().all()
    per_service = named.groupby("service_name")["amount"].sum().sort_values(ascending=False)
    assert len(per_service) >= 4
    assert per_service.iloc[0] > 2 * per_service.iloc[len(per_service) // 2], "Zipf-like: one service dominates"


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_the_unallocated_share_is_the_unattributed_one(year_5, version) -> None:
    costs = usage_based(year_5.costs(version))
    rest = costs[~costs["allocated"]]
    assert rest["service_id"].isna().all() and rest["service_name"].isna().all()
    per_line = rest.groupby(LINE)["amount"].sum()
    whole = costs.groupby(LINE)["amount"].sum()
    assert len(per_line) == len(whole), "every usage-based line has its unallocated row"
    for key, amount in whole.items():
        assert abs(per_line[key] - amount * Decimal("0.05")) <= Decimal("0.01"), key
    overall = sum(rest["amount"]) / sum(costs["amount"])
    assert abs(overall - Decimal("0.05")) < Decimal("0.0001")


def test_lines_that_bill_no_usage_stay_whole_and_unallocated(year) -> None:
    costs = year.costs("v2")
    other = costs[costs["usage_type"].isna()]
    assert set(other["description"]) == {"Shared TLS Certificate", "Gold Support"}
    assert (~other["allocated"]).all() and other["service_id"].isna().all()
    assert Counter(zip(other["invoice_id"], other["line_number"], strict=True)).most_common(1)[0][1] == 1
    items = year.invoices["v2"].line_items
    assert len(other) == int(items["usage_type_cd"].isna().sum())


def test_v2_and_v3_invoices_of_the_same_months_give_the_same_cost_per_service(year) -> None:
    def per_service(version: str) -> dict:
        costs = year.costs(version)
        return costs.groupby(["month", costs["service_id"].fillna("-")])["amount"].sum().to_dict()

    assert per_service("v2") == per_service("v3")


def test_a_v2_estimate_is_matched_by_its_description(year, sim: FastlySimulator, connect) -> None:
    connect("fastly_default", sim.connection())
    estimate = BillingHook().get_invoice_mtd(sim.customer_id, 2025, 5)
    f = frames.estimate_to_frames(estimate, datetime(2025, 5, 20, tzinfo=timezone.utc))
    costs = allocate(f.invoices, f.line_items, year.usage, year.service_usage)
    sums = costs.groupby("line_number")["amount"].sum()
    assert sums.to_dict() == f.line_items.set_index("line_number")["amount"].to_dict()
    usage_lines = f.line_items[f.line_items["service_type"] == "usage"]
    assert set(costs[costs["allocated"]]["line_number"]) == set(usage_lines["line_number"])
    assert costs["is_estimate"].all()


def hand_usage(month: str, line_units: dict[str, Decimal], customer: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Usage of a month whose usage types have the given units, 70 % to one service, 25 % to another."""
    items = [
        {"month": month, "usage_type": kind, "quantity": units, "product_id": "cdn_usage"}
        for kind, units in line_units.items()
    ]
    services = [
        {
            "customer_id": customer,
            "start_month": month,
            "end_month": month,
            "usage_type": kind,
            "service_id": sid,
            "service_name": name,
            "usage_units": units * part,
        }
        for kind, units in line_units.items()
        for sid, name, part in (("S1", "shop", Decimal("0.7")), ("S2", "blog", Decimal("0.25")))
    ]
    return usage.usage_to_frames(items, customer), usage.service_usage_to_frames(services)


def test_the_real_2018_invoice_is_matched_by_usage_type_cd() -> None:
    invoice = json.loads((DATA / "v2_invoice_meltano_2018_02.json").read_text())
    f = frames.invoice_to_frames(invoice)
    lines = f.line_items
    billed = lines[lines["usage_type_cd"].notna()]
    units = {cd.replace("_", " "): u for cd, u in zip(billed["usage_type_cd"], billed["units"], strict=True)}
    used, services = hand_usage("2018-02", units, invoice["customer_id"])
    costs = allocate(f.invoices, lines, used, services)
    assert costs.groupby("line_number")["amount"].sum().to_dict() == lines.set_index("line_number")["amount"].to_dict()
    south_africa = costs[costs["line_number"] == 12]
    assert dict(zip(south_africa["service_name"].fillna("unallocated"), south_africa["amount"], strict=True)) == {
        "shop": Decimal("3.00"),
        "blog": Decimal("1.07"),
        "unallocated": Decimal("0.21"),
    }
    assert south_africa["usage_type"].unique().tolist() == ["South Africa Bandwidth"]
    plan_and_tls = costs[costs["line_number"].isin([1, 14])]
    assert dict(zip(plan_and_tls["line_number"], plan_and_tls["amount"], strict=True)) == {
        1: Decimal("0.0"),
        14: Decimal("100.0"),
    }
    assert (~plan_and_tls["allocated"]).all()

    del units["South Africa Bandwidth"]
    used, services = hand_usage("2018-02", units, invoice["customer_id"])
    with pytest.raises(
        AllocationError, match=r"invoice \d+ line 12 \('South Africa Bandwidth \(15.278642313 gigabytes"
    ):
        allocate(f.invoices, lines, used, services)


def test_v3_lines_are_matched_by_region_and_usage_type() -> None:
    invoice = json.loads((DATA / "v3_invoice.synthetic.json").read_text(), parse_float=Decimal)
    f = frames.invoice_to_frames(invoice)
    month = f.invoices["period_start"][0].strftime("%Y-%m")
    used, services = hand_usage(
        month, {"North America Bandwidth": Decimal("612.5"), "North America Requests": Decimal("1200")}, "C"
    )
    used["customer_id"] = services["customer_id"] = invoice["customer_id"]
    costs = allocate(f.invoices, f.line_items, used, services)
    assert set(costs[costs["allocated"]]["usage_type"]) == {"North America Bandwidth", "North America Requests"}
    tls = costs[costs["description"] == "Shared TLS Certificate"]
    assert tls[["amount", "allocated"]].values.tolist() == [[Decimal("100.0"), False]]

    no_requests = used[used["usage_type"] != "North America Requests"]
    with pytest.raises(AllocationError, match=r"line 2 \('North America Requests'\) bills usage but matches none"):
        allocate(f.invoices, f.line_items, no_requests, services)


def test_an_invoice_without_usage_for_its_month_is_refused(year) -> None:
    f = year.invoices["v3"]
    with pytest.raises(AllocationError, match=r"no usage metrics for customer \w+ in 2025-\d\d; load them first"):
        allocate(f.invoices, f.line_items, year.usage[year.usage["month"] != "2025-07"], year.service_usage)


def test_services_reporting_more_than_the_total_share_all_of_it() -> None:
    used, services = hand_usage("2025-01", {"Europe Requests": Decimal(10)}, "C")
    services["usage_units"] = [Decimal(8), Decimal(4)]
    invoices = pd.DataFrame({"load_key": ["k"], "period_start": ["2025-01-01T00:00:00Z"]})
    lines = pd.DataFrame(
        [
            {
                "load_key": "k",
                "customer_id": "C",
                "api_version": "v3",
                "invoice_id": "1",
                "line_number": 1,
                "description": "Europe Requests",
                "region": "Europe",
                "usage_type": "Requests",
                "amount": Decimal("1.00"),
            }
        ]
    )
    costs = allocate(invoices, lines, used, services)
    assert costs[["service_name", "amount", "basis_total_units"]].values.tolist() == [
        ["shop", Decimal("0.67"), Decimal(12)],
        ["blog", Decimal("0.33"), Decimal(12)],
    ]


def test_usage_counted_in_different_units_is_refused() -> None:
    used, services = hand_usage("2025-01", {"Europe Bandwidth": Decimal(10)}, "C")
    used["unit"], services["unit"] = "GB", "TB"
    invoices = pd.DataFrame({"load_key": ["k"], "period_start": ["2025-01-01T00:00:00Z"]})
    lines = pd.DataFrame([{"load_key": "k", "customer_id": "C", "api_version": "v3", "amount": Decimal(1)}])
    with pytest.raises(
        AllocationError, match=r"2025-01 usage type 'Europe Bandwidth' of C is counted in \['GB', 'TB'\]"
    ):
        allocate(invoices, lines, used, services)


amounts = st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=2)
weights = st.lists(st.decimals(min_value=0, max_value=Decimal("1e9"), places=9), min_size=1, max_size=30).filter(
    lambda ws: any(w > 0 for w in ws)
)


@given(amounts, weights)
def test_largest_remainder_adds_up_exactly_and_stays_within_a_cent(amount: Decimal, ws: list[Decimal]) -> None:
    shares = largest_remainder(amount, ws)
    assert sum(shares) == amount
    whole = sum(Fraction(w) for w in ws)
    for share, w in zip(shares, ws, strict=True):
        assert share == share.quantize(Decimal("0.01"))
        assert abs(Fraction(share) - Fraction(amount) * Fraction(w) / whole) < Fraction(1, 100)
        assert share * amount >= 0


@given(st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=4), weights)
def test_largest_remainder_keeps_finer_amounts_at_their_precision(amount: Decimal, ws: list[Decimal]) -> None:
    assert sum(largest_remainder(amount, ws)) == amount


def test_largest_remainder_gives_leftover_cents_to_the_largest_remainders() -> None:
    assert largest_remainder(Decimal("1.00"), [Decimal(1)] * 3) == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert largest_remainder(Decimal("-0.05"), [Decimal(2), Decimal(1)]) == [Decimal("-0.03"), Decimal("-0.02")]
    with pytest.raises(ValueError, match="one positive"):
        largest_remainder(Decimal(1), [Decimal(0)])
