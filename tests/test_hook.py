"""BillingHook against the simulator over loopback: requests as sent, answers as parsed, errors as raised."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyAuthError, FastlyNotFoundError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import NO_BILLING_TOKEN, FastlySimulator
from airflow_provider_fastly_billing.testing.invoices import invoice_csv, invoice_pdf

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def hook(sim: FastlySimulator, connect) -> BillingHook:
    connect("fastly_default", sim.connection())
    return BillingHook(max_wait=0.01)


def only_request(sim: FastlySimulator):
    (request,) = sim.billing_requests()
    return request


def test_get_invoice_sends_path_accept_and_key(hook: BillingHook, sim: FastlySimulator) -> None:
    invoice = hook.get_invoice("2025", 3)
    request = only_request(sim)
    assert request.path == "/billing/v2/year/2025/month/03"
    assert request.query == {}
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Fastly-Key"] == sim.token
    assert invoice["customer_id"] == sim.customer_id
    assert invoice["start_time"] == "2025-03-01T00:00:00Z"


def test_money_is_decimal_and_adds_up(hook: BillingHook) -> None:
    invoice = hook.get_invoice(2025, 6)
    total = invoice["total"]
    assert isinstance(total["cost"], Decimal)
    assert sum(item["amount"] for item in invoice["line_items"]) == total["cost"]
    assert total["bandwidth_cost"] + total["requests_cost"] == total["incurred_cost"]
    assert all(isinstance(item["rate_per_unit"], Decimal) for item in invoice["line_items"])


def test_unknown_keys_are_kept(hook: BillingHook) -> None:
    total = hook.get_invoice(2025, 6)["total"]
    # Real invoices carry these beyond Fastly's published model.
    assert {"percentile", "percentile_cost", "commit_shortfall", "discount_amount"} <= total.keys()


def test_get_invoice_by_id(hook: BillingHook, sim: FastlySimulator) -> None:
    customer = sim.customers[1]
    invoice_id = sim.invoice_ids(customer)[5]
    invoice = hook.get_invoice_by_id(customer, str(invoice_id))
    assert only_request(sim).path == f"/billing/v2/account_customers/{customer}/invoices/{invoice_id}"
    assert invoice["invoice_id"] == invoice_id
    assert invoice["customer_id"] == customer


def test_get_customer_names_each_account_customer(hook: BillingHook, sim: FastlySimulator) -> None:
    names = {customer: hook.get_customer(customer)["name"] for customer in sim.customers}
    assert names == dict(
        zip(sim.customers, ("Acme Media Ltd", "Northwind Streaming GmbH", "Globex Retail Inc."), strict=True)
    )
    assert [r.path for r in sim.requests] == [f"/customer/{c}" for c in sim.customers]
    assert sim.requests[0].headers["Fastly-Key"] == sim.token


def test_get_customer_unknown_is_a_404_and_a_bad_id_is_refused_before_sending(
    hook: BillingHook, sim: FastlySimulator
) -> None:
    with pytest.raises(FastlyNotFoundError, match="NoSuchCustomer1"):
        hook.get_customer("NoSuchCustomer1")
    sim.reset()
    with pytest.raises(ValueError, match="customer"):
        hook.get_customer("../tokens")
    assert sim.requests == []


def test_get_invoice_mtd_with_and_without_period(hook: BillingHook, sim: FastlySimulator) -> None:
    estimate = hook.get_invoice_mtd(sim.customer_id)
    assert estimate["status"]["status"] == "MTD"
    hook.get_invoice_mtd(sim.customer_id, year=2025, month="2")
    first, second = sim.billing_requests()
    assert first.path == second.path == f"/billing/v2/account_customers/{sim.customer_id}/mtd_invoice"
    assert first.query == {}
    assert second.query == {"year": "2025", "month": "02"}


def test_get_invoice_mtd_returns_none_on_202(sim: FastlySimulator, connect) -> None:
    sim.mtd_pending = 2
    connect("fastly_default", sim.connection())
    hook = BillingHook()
    assert hook.get_invoice_mtd(sim.customer_id) is None
    assert hook.get_invoice_mtd(sim.customer_id) is None
    assert hook.get_invoice_mtd(sim.customer_id)["customer_id"] == sim.customer_id
    assert len(sim.billing_requests()) == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.get_invoice(2025, 13), "between 1 and 12"),
        (lambda h: h.get_invoice(2025, 0), "between 1 and 12"),
        (lambda h: h.get_invoice("20x5", 1), "not a valid year"),
        (lambda h: h.get_invoice(9999, 1), "future"),
        (lambda h: h.get_invoice(-1, 1), "future or before"),
        (lambda h: h.get_invoice(2025, True), "integer or a string"),
        (lambda h: h.get_invoice(2025, 1.0), "integer or a string"),
        (lambda h: h.get_invoice(2025, " 3"), "not a valid month"),
        (lambda h: h.get_invoice(2025, "٣"), "not a valid month"),
        (lambda h: h.get_invoice_by_id("../x", 1), "customer_id"),
        (lambda h: h.get_invoice_by_id("%2e", 1), "customer_id"),
        (lambda h: h.get_invoice_by_id("a b", 1), "customer_id"),
        (lambda h: h.get_invoice_by_id("a/b", 1), "customer_id"),
        (lambda h: h.get_invoice_by_id("", 1), "customer_id"),
        (lambda h: h.get_invoice_by_id(None, 1), "customer_id"),
        (lambda h: h.get_invoice_by_id("abc", "1/../2"), "invoice_id"),
        (lambda h: h.get_invoice_by_id("abc", "12%2F3"), "invoice_id"),
        (lambda h: h.get_invoice_by_id("abc", -5), "invoice_id"),
        (lambda h: h.get_invoice_by_id("abc", ""), "invoice_id"),
        (lambda h: h.get_invoice_by_id("abc", 10**30), "invoice_id"),
        (lambda h: h.get_invoice_mtd("abc", year=2025), "both year and month"),
        (lambda h: h.get_invoice_mtd("ab\u00e9"), "customer_id"),
        (lambda h: h.download_invoice("x.pdf", fmt="exe", year=2025, month=1), "fmt"),
        (lambda h: h.download_invoice("x.pdf", fmt="pdf"), "either year and month"),
        (lambda h: h.download_invoice("x.pdf", fmt="pdf", year=2025, month=1, invoice_id=3), "either year"),
    ],
)
def test_bad_input_is_refused_before_any_request(hook: BillingHook, sim: FastlySimulator, call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(hook)
    assert sim.requests == []


def test_429_with_retry_after_is_honoured(sim: FastlySimulator, connect, capsys) -> None:
    sim.rate_limit, sim.rate_limit_window = 1, 1.0
    connect("fastly_default", sim.connection())
    hook = BillingHook(max_wait=5)
    hook.get_invoice(2025, 1)
    invoice = hook.get_invoice(2025, 2)
    assert invoice["start_time"].startswith("2025-02")
    statuses = [r.path for r in sim.billing_requests()]
    assert len(statuses) == 3  # the first month, then 429, then the retry
    assert sim.rate_limited == 1
    logged = capsys.readouterr().out
    assert "Fastly answered 429 on /billing/v2/year/2025/month/02; retry 1/5 in 1.0 s" in logged


def test_5xx_retried_then_success(hook: BillingHook, sim: FastlySimulator) -> None:
    sim.inject("status", times=2, status=502)
    assert hook.get_invoice(2025, 1)["invoice_id"]
    assert len(sim.billing_requests()) == 3


def test_5xx_exhausted_is_a_clear_error(sim: FastlySimulator, connect) -> None:
    sim.inject("status", times=10, status=503, html=True)
    connect("fastly_default", sim.connection())
    hook = BillingHook(max_retries=2, max_wait=0.01)
    with pytest.raises(FastlyApiError) as caught:
        hook.get_invoice(2025, 1)
    assert caught.value.status == 503
    assert str(caught.value) == (
        "Fastly API error 503 on GET /billing/v2/year/2025/month/01: "
        "Service Unavailable (a text/html body without a Fastly error message)"
    )
    assert len(sim.billing_requests()) == 3


def test_dropped_connection_is_retried(hook: BillingHook, sim: FastlySimulator) -> None:
    sim.inject("reset")
    sim.inject("drop")
    assert hook.get_invoice(2025, 4)["start_time"].startswith("2025-04")
    assert len(sim.billing_requests()) == 3


def test_malformed_json_is_a_clear_error(hook: BillingHook, sim: FastlySimulator) -> None:
    sim.inject("truncate")
    with pytest.raises(FastlyApiError, match="not valid JSON"):
        hook.get_invoice(2025, 4)


def test_json_labelled_html_is_still_read(hook: BillingHook, sim: FastlySimulator) -> None:
    sim.inject("content_type")
    assert hook.get_invoice(2025, 4)["total"]["cost"] > 0


@pytest.mark.parametrize(
    ("token", "error", "text"),
    [
        (
            "not-the-token-XYZZY",
            FastlyAuthError,
            "401 on GET /billing/v2/year/2025/month/01: Provided credentials",
        ),
        (NO_BILLING_TOKEN, FastlyAuthError, "403 on GET /billing/v2/year/2025/month/01: Unauthorized"),
    ],
)
def test_auth_errors_are_typed_and_hold_no_token(sim, connect, token, error, text) -> None:
    connect("fastly_default", sim.connection(token))
    with pytest.raises(error) as caught:
        BillingHook().get_invoice(2025, 1)
    assert text in str(caught.value)
    assert token not in str(caught.value) and token not in repr(caught.value)
    assert len(sim.billing_requests()) == 1


def test_not_found_is_typed(hook: BillingHook, sim: FastlySimulator) -> None:
    with pytest.raises(FastlyNotFoundError, match=r"404 .*Record not found \(No invoice 42\)"):
        hook.get_invoice_by_id(sim.customer_id, 42)
    with pytest.raises(FastlyNotFoundError, match="No invoice for 2019-05"):
        hook.get_invoice(2019, 5)


def test_token_never_in_repr(hook: BillingHook, sim: FastlySimulator) -> None:
    hook.get_invoice(2025, 1)
    assert sim.token not in repr(hook) and sim.token not in repr(hook.settings)


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_download_is_byte_identical(hook: BillingHook, sim: FastlySimulator, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "out" / f"invoice.{fmt}"
    assert hook.download_invoice(target, fmt=fmt, year=2025, month=7) == target
    invoice = sim.invoice(sim.customer_id, 2025, 7)
    expected = invoice_csv(invoice) if fmt == "csv" else b"".join(invoice_pdf(invoice)[1])
    assert target.read_bytes() == expected
    assert only_request(sim).headers["Accept"] == {"csv": "text/csv", "pdf": "application/pdf"}[fmt]
    assert list(target.parent.iterdir()) == [target]


def test_download_by_id_to_object_storage_url(hook: BillingHook, sim: FastlySimulator, tmp_path: Path) -> None:
    customer = sim.customers[2]
    invoice_id = sim.invoice_ids(customer)[0]
    url = f"file://{tmp_path}/store/invoice.csv"
    hook.download_invoice(url, fmt="csv", customer_id=customer, invoice_id=invoice_id)
    assert (tmp_path / "store" / "invoice.csv").read_bytes() == invoice_csv(sim.invoice_by_id(customer, invoice_id))


def test_broken_download_leaves_no_file(sim: FastlySimulator, connect, tmp_path: Path) -> None:
    sim.pdf_padding = 4 << 20
    sim.inject("drop", times=3)
    connect("fastly_default", sim.connection())
    hook = BillingHook(max_retries=2, max_wait=0.01)
    with pytest.raises(FastlyApiError, match="download broken off"):
        hook.download_invoice(tmp_path / "invoice.pdf", fmt="pdf", year=2025, month=1)
    assert list(tmp_path.iterdir()) == []
    assert len(sim.billing_requests()) == 3


def test_broken_download_is_retried_whole(hook: BillingHook, sim: FastlySimulator, tmp_path: Path) -> None:
    sim.pdf_padding = 1 << 20
    sim.inject("drop")
    target = tmp_path / "invoice.pdf"
    hook.download_invoice(target, fmt="pdf", year=2025, month=1)
    length, chunks = invoice_pdf(sim.invoice(sim.customer_id, 2025, 1), sim.pdf_padding)
    assert target.stat().st_size == length
    assert target.read_bytes() == b"".join(chunks)


def test_plain_http_to_a_remote_host_is_refused(connect) -> None:
    connect("fastly_default", {"conn_type": "fastly", "host": "http://api.example.com", "password": "t"})
    with pytest.raises(ValueError, match="refusing to send the API token over plain http"):
        BillingHook().get_invoice(2025, 1)


def test_missing_token_is_refused(connect) -> None:
    connect("fastly_default", {"conn_type": "fastly", "host": "https://api.fastly.com"})
    with pytest.raises(ValueError, match="has no API token"):
        BillingHook().get_invoice(2025, 1)


def test_token_from_extra_and_settings_from_extras(sim: FastlySimulator, connect) -> None:
    connect(
        "fastly_alt",
        {
            "conn_type": "fastly",
            "host": sim.url,
            "extra": {"token": sim.token, "timeout": 7, "max_retries": 2},
        },
    )
    hook = BillingHook("fastly_alt")
    assert hook.get_invoice(2025, 1)["invoice_id"]
    assert (hook.settings.timeout, hook.settings.max_retries) == (7.0, 2)


def test_test_connection_reads_billing_and_names_host_and_token(sim: FastlySimulator, connect) -> None:
    connect("fastly_default", sim.connection())
    ok, message = BillingHook().test_connection()
    host = sim.url.removeprefix("http://")
    assert (ok, message) == (True, f"token 'simulator token' reads billing data on {host}")
    assert [(r.path, r.query) for r in sim.requests] == [
        ("/tokens/self", {}),
        ("/billing/v3/invoices", {"limit": "1"}),
    ]


@pytest.mark.parametrize(
    ("token", "text"),
    [
        ("wrong-token", "on {host}: Fastly API error 401 on GET /tokens/self: Provided credentials are missing"),
        (NO_BILLING_TOKEN, "token 'simulator token' is valid on {host} but lacks the Billing role"),
    ],
)
def test_test_connection_says_what_is_wrong(sim: FastlySimulator, connect, token: str, text: str) -> None:
    connect("fastly_default", sim.connection(token))
    ok, message = BillingHook().test_connection()
    assert not ok
    assert text.format(host=sim.url.removeprefix("http://")) in message
    assert token not in message


def test_test_connection_as_the_ui_runs_it(sim: FastlySimulator, monkeypatch) -> None:
    """Airflow's Test button stores the form under a random connection id: the message must not name it."""
    from airflow.models.connection import Connection

    form = Connection(conn_id="qZ3xRandomTmp", conn_type="fastly", host=sim.url, password=NO_BILLING_TOKEN)
    monkeypatch.setenv("AIRFLOW_CONN_QZ3XRANDOMTMP", form.get_uri())
    ok, message = form.test_connection()
    assert not ok and "lacks the Billing role" in message and sim.url.removeprefix("http://") in message
    assert "qZ3xRandomTmp" not in message
    monkeypatch.setenv("AIRFLOW_CONN_QZ3XRANDOMTMP", json.dumps({"conn_type": "fastly", "host": sim.url}))
    ok, message = form.test_connection()
    assert (ok, message) == (False, "the connection has no API token (password or extra 'token')")
