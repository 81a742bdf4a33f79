"""Billing v3 through the hook: cursor paging, invoice by id, month-to-date, over loopback."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyNotFoundError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import FastlySimulator


def hook_for(sim: FastlySimulator, connect) -> BillingHook:
    connect("fastly_default", sim.connection())
    return BillingHook(max_wait=0.01)


@pytest.mark.parametrize(
    ("customers", "months", "expected", "requests"),
    [
        (1, ("2019-01-01", "2019-12-31"), 0, 1),  # before the account's first month
        (1, ("2025-03-01", "2025-03-31"), 1, 1),
        (200, ("2025-03-01", "2025-03-31"), 200, 1),
        (67, ("2025-01-01", "2025-03-31"), 201, 2),
        (100, ("2025-01-01", "2025-10-31"), 1000, 5),
    ],
)
def test_paging_yields_every_invoice_exactly_once(connect, customers, months, expected, requests) -> None:
    with FastlySimulator(account_customers=customers, first_month=(2024, 1)) as sim:
        invoices = list(hook_for(sim, connect).list_invoices(*months))
        sent = sim.billing_requests()
    ids = [i["invoice_id"] for i in invoices]
    assert len(ids) == len(set(ids)) == expected
    assert len(sent) == requests
    cursors = [r.query.get("cursor") for r in sent]
    assert cursors[0] is None and len(set(cursors)) == len(cursors)  # no page fetched twice
    assert all(r.query["limit"] == "200" and r.query["billing_start_date"] == months[0] for r in sent)
    starts = [i["billing_start_date"] for i in invoices]
    assert starts == sorted(starts, reverse=True)
    assert all(isinstance(i["monthly_transaction_amount"], Decimal) for i in invoices)


def test_small_pages_follow_the_cursor(sim: FastlySimulator, connect) -> None:
    invoices = list(hook_for(sim, connect).list_invoices("2025-01-01", "2025-04-30", page_size=5))
    assert len(invoices) == 3 * 4
    assert len(sim.billing_requests()) == 3
    offsets = [json.loads(base64.urlsafe_b64decode(r.query["cursor"]))["o"] for r in sim.billing_requests()[1:]]
    assert offsets == [5, 10]


def test_a_repeated_cursor_is_refused(sim: FastlySimulator, connect) -> None:
    sim.repeat_cursor = True
    with pytest.raises(FastlyApiError, match=r"page 2 names a cursor sent before \(a paging loop\): cursor '"):
        list(hook_for(sim, connect).list_invoices(page_size=2))
    assert len(sim.billing_requests()) == 2  # page 2 points back to itself: refused before a third request


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.list_invoices("2025-13-01"), "start must be a date"),
        (lambda h: h.list_invoices(end="2025/01/01"), "end must be a date"),
        (lambda h: h.list_invoices(end="2025-01-01&limit=9"), "end must be a date"),
        (lambda h: h.list_invoices(page_size=201), "page_size must be"),
        (lambda h: h.list_invoices(page_size=0), "page_size must be"),
        (lambda h: h.list_invoices(page_size="20"), "page_size must be"),
        (lambda h: h.get_invoice_v3("12/../3"), "invoice_id must be"),
        (lambda h: h.get_invoice_v3(None), "invoice_id must be"),
    ],
)
def test_bad_v3_input_is_refused_before_any_request(sim: FastlySimulator, connect, call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(hook_for(sim, connect))
    assert sim.requests == []


def test_v3_invoice_by_id_matches_v2_charges(sim: FastlySimulator, connect) -> None:
    hook = hook_for(sim, connect)
    customer = sim.customers[2]
    invoice_id = sim.invoice_ids(customer)[7]
    v3 = hook.get_invoice_v3(invoice_id)
    v2 = hook.get_invoice_by_id(customer, invoice_id)
    assert sim.billing_requests()[0].path == f"/billing/v3/invoices/{invoice_id}"
    assert v3["invoice_id"] == str(invoice_id) and v3["customer_id"] == customer
    assert v3["monthly_transaction_amount"] == v2["total"]["cost"]
    assert sum(i["amount"] for i in v3["transaction_line_items"]) == v3["monthly_transaction_amount"]
    with pytest.raises(FastlyNotFoundError, match="No invoice 1"):
        hook.get_invoice_v3(1)


def test_v3_month_to_date(sim: FastlySimulator, connect) -> None:
    sim.mtd_pending = 1
    hook = hook_for(sim, connect)
    assert hook.get_invoice_mtd_v3() is None
    estimate = hook.get_invoice_mtd_v3()
    assert sim.billing_requests()[-1].path == "/billing/v3/invoices/month-to-date"
    assert isinstance(estimate["monthly_transaction_amount"], Decimal)  # sent as a string
    assert sum(i["amount"] for i in estimate["transaction_line_items"]) == estimate["monthly_transaction_amount"]


def test_v3_errors_and_retries(sim: FastlySimulator, connect) -> None:
    hook = hook_for(sim, connect)
    sim.inject("status", times=2, status=500, path="/billing/v3/")
    assert len(list(hook.list_invoices("2025-01-01", "2025-01-31"))) == 3
    sim.no_estimate_customers.add(sim.customer_id)
    with pytest.raises(FastlyApiError, match=r"422 .*Month-to-date invoice unavailable"):
        hook.get_invoice_mtd_v3()
