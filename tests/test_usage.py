"""Usage metrics: the hook over loopback to the simulator, paging and its bounds, strict quantities, the frames."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd
import pytest
import requests

from airflow_provider_fastly_billing import usage
from airflow_provider_fastly_billing.api import v3
from airflow_provider_fastly_billing.api.usage import service_usage_queries
from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyAuthError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import NO_BILLING_TOKEN, FastlySimulator
from tests.faults.hostile import Answer, HostileServer

if TYPE_CHECKING:
    from collections.abc import Iterator

SERVICE_PATH = "/billing/v3/service-usage-metrics"


@pytest.fixture
def hook(sim: FastlySimulator, connect) -> BillingHook:
    connect("fastly_default", sim.connection())
    return BillingHook(max_wait=0.01)


@pytest.fixture
def hostile(connect) -> Iterator[tuple[HostileServer, BillingHook]]:
    with HostileServer() as server:
        connect("fastly_hostile", server.connection())
        yield server, BillingHook("fastly_hostile", max_retries=0)


def test_a_year_of_usage_is_four_calls_joined(hook: BillingHook, sim: FastlySimulator) -> None:
    items = hook.get_usage_metrics("2025-01", "2025-12")
    queries = [r.query for r in sim.billing_requests()]
    assert [r.path for r in sim.billing_requests()] == ["/billing/v3/usage-metrics"] * 4
    assert queries == [
        {"start_month": "2025-01", "end_month": "2025-03"},
        {"start_month": "2025-04", "end_month": "2025-06"},
        {"start_month": "2025-07", "end_month": "2025-09"},
        {"start_month": "2025-10", "end_month": "2025-12"},
    ]
    assert sorted({i["month"] for i in items}) == [f"2025-{m:02d}" for m in range(1, 13)]
    assert all(type(i["quantity"]) is Decimal for i in items)
    assert {i["product_id"] for i in items} == {"cdn_usage"}


def test_usage_quantities_are_the_invoice_units(hook: BillingHook) -> None:
    """Per month and usage type, usage metrics equal the units of the invoice's lines, tiers together."""
    items = hook.get_usage_metrics("2025-05", "2025-06")
    for month in (5, 6):
        billed: dict[str, Decimal] = defaultdict(Decimal)
        for line in hook.get_invoice(2025, month)["line_items"]:
            if line["usage_type_cd"]:
                billed[line["service_name"]] += line["units"]
        used = {i["usage_type"]: i["quantity"] for i in items if i["month"] == f"2025-{month:02d}"}
        assert used == billed
        assert len(used) >= 4


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2025-13", "2025-12", "not between 1 and 12"),
        ("2025-00", "2025-12", "not between 1 and 12"),
        ("2025-1", "2025-12", "YYYY-MM"),
        ("2025/01", "2025-12", "YYYY-MM"),
        ("202501", "2025-12", "YYYY-MM"),
        (None, "2025-12", "YYYY-MM"),
        ("2025-01", "2999-01", "future"),
        ("1999-12", "2025-01", "before 2000"),
        ("2025-06", "2025-05", "after end_month"),
        ("2025-01; DROP", "2025-02", "YYYY-MM"),
    ],
)
def test_bad_months_are_refused_before_any_request(hook: BillingHook, sim: FastlySimulator, start, end, message):
    with pytest.raises(ValueError, match=message):
        hook.get_usage_metrics(start, end)
    with pytest.raises(ValueError, match=message):
        hook.list_service_usage(
            product_id="cdn_usage", usage_type_name="Europe Requests", start_month=start, end_month=end
        )
    assert sim.billing_requests() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 10_001}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"usage_type_name": None}, "together"),
        ({"product_id": None}, "together"),
        ({"usage_type_name": ""}, "non-empty"),
        ({"service": "../tokens"}, "service id"),
    ],
)
def test_bad_service_usage_queries_are_refused_before_any_request(
    hook: BillingHook, sim: FastlySimulator, options, message
) -> None:
    query = {"product_id": "cdn_usage", "usage_type_name": "Europe Requests", "start_month": "2025-01"}
    with pytest.raises(ValueError, match=message):
        hook.list_service_usage(**{**query, "end_month": "2025-01", **options})
    assert sim.billing_requests() == []


def test_service_usage_pages_through_the_cursor(hook: BillingHook, sim: FastlySimulator) -> None:
    query = {"product_id": "cdn_usage", "usage_type_name": "North America Bandwidth"}
    whole = list(hook.list_service_usage(**query, start_month="2025-03", end_month="2025-03", page_size=10_000))
    sim.reset()
    paged = list(hook.list_service_usage(**query, start_month="2025-03", end_month="2025-03", page_size=2))
    requests = sim.billing_requests()
    assert len(requests) >= 3
    assert [r.query.get("limit") for r in requests] == ["2"] * len(requests)
    assert "cursor" not in requests[0].query and all(r.query["cursor"] for r in requests[1:])
    assert paged == whole
    assert len({i["service_id"] for i in paged}) == len(paged) >= 5
    assert all(type(i["usage_units"]) is Decimal and i["usage_units"] > 0 for i in paged)
    assert {(i["usage_type"], i["unit"], i["customer_id"]) for i in paged} == {
        ("North America Bandwidth", "GB", sim.customer_id)
    }


def test_service_usage_queries_cover_every_usage_type_of_every_month(hook: BillingHook) -> None:
    items = hook.get_usage_metrics("2025-01", "2025-02")
    queries = service_usage_queries(items + items)
    assert len(queries) == len(items)
    assert queries[0] == {
        "product_id": "cdn_usage",
        "usage_type_name": items[0]["usage_type"],
        "start_month": "2025-01",
        "end_month": "2025-01",
    }
    rows = [row for query in queries for row in hook.list_service_usage(**query)]
    assert sum(r["usage_units"] for r in rows) == sum(i["quantity"] for i in items)


def test_service_filter_asks_for_one_service(hook: BillingHook, sim: FastlySimulator) -> None:
    query = {"product_id": "cdn_usage", "usage_type_name": "Europe Requests", "start_month": "2025-03"}
    everyone = list(hook.list_service_usage(**query, end_month="2025-03"))
    (one,) = hook.list_service_usage(**query, end_month="2025-03", service=everyone[1]["service_id"])
    assert one == everyone[1]
    assert sim.billing_requests()[-1].query["service"] == everyone[1]["service_id"]


def test_services_have_skewed_usage_that_adds_up_to_the_month(hook: BillingHook) -> None:
    (total,) = [i for i in hook.get_usage_metrics("2025-02", "2025-02") if i["usage_type"] == "Europe Bandwidth"]
    services = list(
        hook.list_service_usage(
            product_id="cdn_usage", usage_type_name="Europe Bandwidth", start_month="2025-02", end_month="2025-02"
        )
    )
    units = sorted((s["usage_units"] for s in services), reverse=True)
    assert sum(units) == total["quantity"]
    assert len(units) >= 4
    assert units[0] > 2 * units[len(units) // 2]


@pytest.mark.parametrize("share", [Decimal("0.05"), Decimal("0.2")])
def test_unattributed_share_is_left_out_of_the_services(connect, share: Decimal) -> None:
    with FastlySimulator(unattributed_share=share) as sim:
        connect("fastly_default", sim.connection())
        hook = BillingHook()
        for item in hook.get_usage_metrics("2025-04", "2025-04"):
            services = hook.list_service_usage(
                product_id="cdn_usage", usage_type_name=item["usage_type"], start_month="2025-04", end_month="2025-04"
            )
            attributed = sum(s["usage_units"] for s in services)
            quantum = Decimal(1).scaleb(item["quantity"].as_tuple().exponent)
            assert abs(item["quantity"] - attributed - share * item["quantity"]) <= quantum


def test_usage_calls_get_the_retries_and_errors_of_every_call(hook: BillingHook, sim: FastlySimulator, connect) -> None:
    sim.inject("status", times=2, status=503, path=SERVICE_PATH)
    sim.inject("drop", times=1, path="/billing/v3/usage-metrics")
    assert hook.get_usage_metrics("2025-01", "2025-01")
    rows = hook.list_service_usage(
        product_id="cdn_usage", usage_type_name="Europe Requests", start_month="2025-01", end_month="2025-01"
    )
    assert list(rows)
    assert len(sim.billing_requests()) == 5
    connect("fastly_default", sim.connection(token=NO_BILLING_TOKEN))
    with pytest.raises(FastlyAuthError, match="403 on GET /billing/v3/usage-metrics"):
        BillingHook().get_usage_metrics("2025-01", "2025-01")


def test_the_simulator_refuses_what_fastly_refuses(sim: FastlySimulator) -> None:
    def status(path: str, **query: str) -> int:
        return requests.get(sim.url + path, params=query, headers={"Fastly-Key": sim.token}, timeout=10).status_code

    assert status("/billing/v3/usage-metrics", start_month="2025-01", end_month="2025-04") == 400
    assert status("/billing/v3/usage-metrics", start_month="2025-03", end_month="2025-01") == 400
    assert status(SERVICE_PATH, start_month="2025-01", end_month="2025-01") == 400
    assert (
        status(
            SERVICE_PATH,
            product_id="cdn_usage",
            usage_type_name="Europe Requests",
            start_month="2025-01",
            end_month="2025-01",
            limit="10001",
        )
        == 400
    )


def test_a_repeated_cursor_is_refused(hook: BillingHook, sim: FastlySimulator) -> None:
    sim.repeat_cursor = True
    pages = hook.list_service_usage(
        product_id="cdn_usage",
        usage_type_name="North America Requests",
        start_month="2025-03",
        end_month="2025-03",
        page_size=1,
    )
    with pytest.raises(FastlyApiError, match=r"page 2 names a cursor sent before \(a paging loop\): cursor '\w+=*'"):
        list(pages)
    assert len(sim.billing_requests()) == 2


def _page(details: list[dict], cursor: str, total: int = 2, limit: int = 1) -> bytes:
    meta = {"next_cursor": cursor, "limit": limit, "sort": "usage_units", "total": total}
    return json.dumps(
        {"data": {"usage_type": "Europe Requests", "unit": "unit", "details": details, "meta": meta}}
    ).encode()


SERVICE = {"service_id": "abc", "service_name": "www", "usage_units": 1.5}


def _ask(hook: BillingHook) -> list[dict]:
    return list(
        hook.list_service_usage(
            product_id="cdn_usage",
            usage_type_name="Europe Requests",
            start_month="2025-01",
            end_month="2025-01",
            page_size=1,
        )
    )


def test_endless_fresh_cursors_stop_at_what_meta_total_allows(hostile) -> None:
    server, hook = hostile
    server.script(Answer(body=lambda path, query: _page([SERVICE], f"c{len(server.seen)}")))
    with pytest.raises(
        FastlyApiError,
        match=r"page 4 names a next cursor, beyond the 4 pages that meta.total=2 and meta.limit=1 allow: cursor 'c4'",
    ):
        _ask(hook)
    assert len(server.seen) == 4


def test_an_empty_page_with_a_next_cursor_is_refused(hostile) -> None:
    server, hook = hostile
    server.script(Answer(body=_page([SERVICE], "c1")), Answer(body=_page([], "c2")))
    with pytest.raises(FastlyApiError, match=r"page 2 is empty but names a next cursor: cursor 'c2'"):
        _ask(hook)


def test_endless_pages_without_a_total_stop_at_max_pages(monkeypatch) -> None:
    """The walk is sans-IO: here its ``fetch`` is a function that always has one more page."""
    monkeypatch.setattr(v3, "MAX_PAGES", 5)
    sent: list[dict[str, str]] = []

    def fetch(query: dict[str, str]) -> dict:
        sent.append(query)
        return {"items": [len(sent)], "meta": {"next_cursor": f"c{len(sent)}"}}

    pages = v3.walk(fetch, "/x", {"limit": "1"}, items=lambda answer: answer["items"])
    with pytest.raises(FastlyApiError, match=r"page 5 names a next cursor, beyond the 5 pages .*: cursor 'c5'"):
        list(pages)
    assert [q.get("cursor") for q in sent] == [None, "c1", "c2", "c3", "c4"]


def test_a_non_numeric_service_quantity_names_month_type_service_and_field(hostile) -> None:
    server, hook = hostile
    server.script(Answer(body=_page([{**SERVICE, "usage_units": "lots"}], "")))
    with pytest.raises(
        FastlyApiError,
        match=r"service usage 2025-01..2025-01, usage type 'Europe Requests', service 'abc' \(#1\): usage_units 'lots'",
    ):
        _ask(hook)


@pytest.mark.parametrize("quantity", [None, "", "12 GB", " 12 ", "1_000", "NaN", True, [1]])
def test_a_non_numeric_usage_quantity_names_month_type_and_field(hostile, quantity) -> None:
    server, hook = hostile
    item = {"month": "2025-02", "usage_type": "Asia Bandwidth", "quantity": quantity}
    server.script(Answer(body=json.dumps({"data": [item]}).encode()))
    with pytest.raises(
        FastlyApiError, match=r"month 2025-02, usage type 'Asia Bandwidth'\): quantity .* is not a number"
    ):
        hook.get_usage_metrics("2025-02", "2025-02")


def test_usage_data_as_one_object_is_read_as_a_list_of_one(hostile) -> None:
    server, hook = hostile
    item = {"month": "2025-02", "usage_type": "Asia Bandwidth", "quantity": "12.000000001", "future_field": 1}
    server.script(Answer(body=json.dumps({"data": item}).encode()))
    assert hook.get_usage_metrics("2025-02", "2025-02") == [{**item, "quantity": Decimal("12.000000001")}]


def test_usage_frames_have_the_declared_columns_kinds_and_keys(hook: BillingHook, sim: FastlySimulator) -> None:
    items = hook.get_usage_metrics("2025-01", "2025-02")
    frame = usage.usage_to_frames(items, sim.customer_id)
    assert list(frame.columns) == list(usage.SCHEMA["usage"])
    assert len(frame) == len(items)
    assert set(frame["load_key"]) == {f"usage/{sim.customer_id}/2025-01", f"usage/{sim.customer_id}/2025-02"}
    assert frame["quantity"].tolist() == [i["quantity"] for i in items]
    assert str(frame["last_updated_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["extra"].isna().all()

    rows = list(
        hook.list_service_usage(
            product_id="cdn_usage", usage_type_name="Europe Requests", start_month="2025-02", end_month="2025-02"
        )
    )
    services = usage.service_usage_to_frames(rows)
    assert list(services.columns) == list(usage.SCHEMA["service_usage"])
    assert set(services["load_key"]) == {f"usage/{sim.customer_id}/2025-02"}
    assert services["usage_units"].tolist() == [r["usage_units"] for r in rows]
    assert services["service_name"].notna().all() and services["extra"].isna().all()
    assert sum(services["usage_units"]) == next(
        i["quantity"] for i in items if i["usage_type"] == "Europe Requests" and i["month"] == "2025-02"
    )


def test_service_usage_over_several_months_cannot_become_rows(hook: BillingHook) -> None:
    rows = hook.list_service_usage(
        product_id="cdn_usage", usage_type_name="Europe Requests", start_month="2025-01", end_month="2025-03"
    )
    with pytest.raises(ValueError, match=r"covers 2025-01..2025-03; ask for one month at a time"):
        usage.service_usage_to_frames(rows)


def test_frames_refuse_inexact_quantities() -> None:
    item = {"month": "2025-01", "usage_type": "Europe Bandwidth", "quantity": 1.25}
    with pytest.raises(
        ValueError, match=r"month 2025-01, usage type 'Europe Bandwidth'\): quantity 1.25 is not an exact"
    ):
        usage.usage_to_frames([item], "cust")


def test_empty_frames_keep_their_kinds() -> None:
    frame = usage.service_usage_to_frames([])
    assert list(frame.columns) == list(usage.SCHEMA["service_usage"]) and frame.empty
    assert isinstance(frame["fetched_at"].dtype, pd.DatetimeTZDtype)
