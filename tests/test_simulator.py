"""The simulator itself, seen from a plain HTTP client: what users' own DAG tests can rely on."""

from __future__ import annotations

from decimal import Decimal

import requests

from airflow_provider_fastly_billing.hooks.billing import BillingHook, parse_json
from airflow_provider_fastly_billing.testing import NO_BILLING_TOKEN, FastlySimulator


def get(sim: FastlySimulator, path: str, token: str | None = None, **headers: str) -> requests.Response:
    return requests.get(f"{sim.url}{path}", headers={"Fastly-Key": token or sim.token, **headers}, timeout=10)


def test_the_connection_fixture_points_the_default_connection_at_it(fastly_connection: FastlySimulator) -> None:
    assert BillingHook().get_invoice(2025, 1)["customer_id"] == fastly_connection.customer_id


def test_invoices_are_deterministic_and_add_up(sim: FastlySimulator) -> None:
    first = get(sim, "/billing/v2/year/2025/month/07").content
    with FastlySimulator() as other:
        assert get(other, "/billing/v2/year/2025/month/07").content == first
    invoice = parse_json(first)
    assert sum(i["amount"] for i in invoice["line_items"]) == invoice["total"]["cost"]
    assert len(invoice["regions"]) >= 2 and invoice["total"]["extras"]
    tiers = [t for r in invoice["regions"].values() for m in ("bandwidth", "requests") for t in r[m]["tiers"]]
    assert sum(t["total"] for t in tiers) == invoice["total"]["incurred_cost"]


def test_formats_follow_accept(sim: FastlySimulator) -> None:
    csv = get(sim, "/billing/v2/year/2025/month/07", Accept="text/csv")
    pdf = get(sim, "/billing/v2/year/2025/month/07", Accept="application/pdf")
    assert csv.headers["Content-Type"] == "text/csv" and csv.text.startswith("invoice_id,line_number,")
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF-1.4")
    assert pdf.content.rstrip().endswith(b"%%EOF")


def test_authentication_and_not_found(sim: FastlySimulator) -> None:
    assert requests.get(f"{sim.url}/billing/v2/year/2025/month/07", timeout=10).status_code == 401
    assert get(sim, "/billing/v2/year/2025/month/07", "wrong").json() == {
        "msg": "Provided credentials are missing or invalid"
    }
    assert get(sim, "/billing/v2/year/2025/month/07", NO_BILLING_TOKEN).status_code == 403
    assert get(sim, "/tokens/self", NO_BILLING_TOKEN).status_code == 200
    assert get(sim, "/billing/v2/year/2023/month/12").status_code == 404  # before the account's first month
    assert get(sim, "/billing/v2/account_customers/nobody/invoices/5000001").status_code == 404


def test_rate_limit_headers_and_429(sim: FastlySimulator) -> None:
    sim.rate_limit = 2
    answers = [get(sim, "/billing/v2/year/2025/month/01") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["Fastly-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert "hourly rate limit" in answers[2].json()["msg"]


def test_estimate_202_then_200_and_v3_paging_errors(sim: FastlySimulator) -> None:
    sim.mtd_pending = 1
    path = f"/billing/v2/account_customers/{sim.customer_id}/mtd_invoice"
    assert get(sim, path).status_code == 202
    assert get(sim, path).json()["status"]["status"] == "MTD"
    assert get(sim, "/billing/v3/invoices?cursor=not-a-cursor").status_code == 400
    assert get(sim, "/billing/v3/invoices?limit=201").status_code == 400
    page = parse_json(get(sim, "/billing/v3/invoices?limit=2").content)
    assert len(page["data"]) == 2 and page["meta"]["next_cursor"]
    assert isinstance(page["data"][0]["monthly_transaction_amount"], Decimal)


def test_string_amounts_like_some_real_answers(sim: FastlySimulator) -> None:
    sim.string_amounts = True
    item = get(sim, "/billing/v2/year/2025/month/07").json()["line_items"][0]
    assert all(isinstance(item[k], str) for k in ("units", "rate_per_unit", "amount"))
