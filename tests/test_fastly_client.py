"""Faithfulness: Fastly's own Python client (fastly==7.0.0) parses every 200 answer of the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import fastly
import pytest
from fastly.api.billing_api import BillingApi
from fastly.model.billing_estimate_response import BillingEstimateResponse
from fastly.model.billing_response import BillingResponse

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator


@pytest.fixture
def billing_api(sim: FastlySimulator, monkeypatch: pytest.MonkeyPatch) -> BillingApi:
    monkeypatch.delenv("FASTLY_API_TOKEN", raising=False)
    configuration = fastly.Configuration(host=sim.url)
    configuration.api_token = sim.token
    return BillingApi(fastly.ApiClient(configuration))


@pytest.mark.parametrize("period", [(2024, 1), (2025, 2), (2025, 12), (2026, 3)])
def test_client_parses_get_invoice(billing_api: BillingApi, sim: FastlySimulator, period) -> None:
    year, month = period
    invoice = billing_api.get_invoice(year=f"{year:04d}", month=f"{month:02d}")
    assert isinstance(invoice, BillingResponse)
    assert invoice.customer_id == sim.customer_id
    assert len(invoice.line_items.value) == len(sim.invoice(sim.customer_id, year, month)["line_items"])
    assert sim.billing_requests()[-1].headers["Fastly-Key"] == sim.token


def test_client_parses_get_invoice_by_id_for_every_customer(billing_api: BillingApi, sim: FastlySimulator) -> None:
    for customer in sim.customers:
        for invoice_id in sim.invoice_ids(customer)[:14:3]:
            invoice = billing_api.get_invoice_by_id(customer_id=customer, invoice_id=invoice_id)
            assert isinstance(invoice, BillingResponse)
            assert invoice.invoice_id == invoice_id


def test_client_parses_get_invoice_mtd(billing_api: BillingApi, sim: FastlySimulator) -> None:
    for customer in sim.customers:
        estimate = billing_api.get_invoice_mtd(customer_id=customer)
        assert isinstance(estimate, BillingEstimateResponse)
        assert estimate.status.status == "MTD"
        past = billing_api.get_invoice_mtd(customer_id=customer, year="2025", month="05")
        assert past.customer_id == customer


@pytest.fixture
def invoices_api(sim: FastlySimulator, monkeypatch: pytest.MonkeyPatch):
    from fastly.api.billing_invoices_api import BillingInvoicesApi

    monkeypatch.delenv("FASTLY_API_TOKEN", raising=False)
    configuration = fastly.Configuration(host=sim.url)
    configuration.api_token = sim.token
    return BillingInvoicesApi(fastly.ApiClient(configuration))


def test_client_parses_every_v3_page_and_invoice(invoices_api, sim: FastlySimulator) -> None:
    from fastly.model.eom_invoice_response import EomInvoiceResponse
    from fastly.model.list_eom_invoices_response import ListEomInvoicesResponse

    cursor, seen = "", []
    while True:
        page = invoices_api.list_invoices(billing_start_date="2024-06-01", limit="7", cursor=cursor)
        assert isinstance(page, ListEomInvoicesResponse)
        seen += [i.invoice_id for i in page.data]
        cursor = page.meta.next_cursor
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == page.meta.total == 3 * len(sim.invoiced_months("2024-06-01"))
    invoice = invoices_api.get_invoice_by_invoice_id(invoice_id=int(seen[0]))
    assert isinstance(invoice, EomInvoiceResponse) and invoice.invoice_id == seen[0]


def test_client_parses_v3_month_to_date(invoices_api, sim: FastlySimulator) -> None:
    from fastly.model.mtd_invoice_response import MtdInvoiceResponse

    estimate = invoices_api.get_month_to_date_invoice()
    assert isinstance(estimate, MtdInvoiceResponse)
    assert estimate.customer_id == sim.customer_id


@pytest.fixture
def usage_api(sim: FastlySimulator, monkeypatch: pytest.MonkeyPatch):
    from fastly.api.billing_usage_metrics_api import BillingUsageMetricsApi

    monkeypatch.delenv("FASTLY_API_TOKEN", raising=False)
    configuration = fastly.Configuration(host=sim.url)
    configuration.api_token = sim.token
    return BillingUsageMetricsApi(fastly.ApiClient(configuration))


def test_client_parses_usage_metrics(usage_api, sim: FastlySimulator) -> None:
    """fastly 7.0.0 declares this answer as one ``Usagemetric``; its ``Usagemetrics`` model reads the body."""
    import json

    from fastly.model.usagemetric import Usagemetric
    from fastly.model.usagemetrics import Usagemetrics
    from fastly.model_utils import validate_and_convert_types

    config = usage_api.api_client.configuration
    for start, end, months in [("2024-01", "2024-03", 3), ("2025-11", "2025-12", 2), ("2026-01", "2026-01", 1)]:
        assert isinstance(usage_api.get_usage_metrics(start_month=start, end_month=end), Usagemetric)
        raw = usage_api.get_usage_metrics(start_month=start, end_month=end, _preload_content=False)
        answer = validate_and_convert_types(json.loads(raw.data), (Usagemetrics,), ["body"], True, True, config)
        assert isinstance(answer, Usagemetrics)
        assert all(isinstance(item, Usagemetric) for item in answer.data)
        assert len({item.month for item in answer.data}) == months
        assert all(item.quantity > 0 and item.unit in ("GB", "unit") for item in answer.data)
    assert sim.billing_requests()[-1].headers["Fastly-Key"] == sim.token


def test_client_parses_every_service_usage_page(usage_api, sim: FastlySimulator) -> None:
    import json

    from fastly.model.serviceusagemetric import Serviceusagemetric
    from fastly.model.serviceusagemetrics import Serviceusagemetrics
    from fastly.model.usagemetric import Usagemetric

    raw = usage_api.get_usage_metrics(start_month="2025-06", end_month="2025-06", _preload_content=False)
    for item in (Usagemetric(**body) for body in json.loads(raw.data)["data"]):
        cursor, seen, pages = "", [], 0
        while True:
            answer = usage_api.get_service_level_usage(
                product_id=item.product_id,
                usage_type_name=item.usage_type,
                start_month="2025-06",
                end_month="2025-06",
                limit="2",
                cursor=cursor,
            )
            assert isinstance(answer, Serviceusagemetrics)
            assert answer.data.usage_type == item.usage_type and answer.data.unit == item.unit
            assert all(isinstance(d, Serviceusagemetric) for d in answer.data.details)
            seen += [d.service_id for d in answer.data.details]
            pages += 1
            cursor = answer.data.meta.next_cursor
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == answer.data.meta.total
        assert pages >= 2


def test_client_parses_get_customer(sim: FastlySimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastly.api.customer_api import CustomerApi
    from fastly.model.customer_response import CustomerResponse

    monkeypatch.delenv("FASTLY_API_TOKEN", raising=False)
    configuration = fastly.Configuration(host=sim.url)
    configuration.api_token = sim.token
    api = CustomerApi(fastly.ApiClient(configuration))
    for customer in sim.customers:
        answer = api.get_customer(customer_id=customer)
        assert isinstance(answer, CustomerResponse)
        assert (answer.id, answer.name) == (customer, sim.account_name(customer))
