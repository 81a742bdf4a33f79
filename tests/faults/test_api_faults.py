"""Faults the Fastly API throws: retried where safe, otherwise a clear error, never a half-written file."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.exceptions import FastlyApiError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing.invoices import invoice_pdf

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_fastly_billing.testing import FastlySimulator


def hook_for(sim: FastlySimulator, connect, **options) -> BillingHook:
    connect("fastly_default", sim.connection())
    return BillingHook(**{"max_wait": 0.01, **options})


def test_429_storm_is_waited_out(sim: FastlySimulator, connect) -> None:
    sim.rate_limit, sim.rate_limit_window = 3, 1.5
    hook = hook_for(sim, connect, max_wait=5)
    started = time.monotonic()
    invoices = [hook.get_invoice(2025, m) for m in range(1, 8)]
    assert [i["start_time"][:7] for i in invoices] == [f"2025-{m:02d}" for m in range(1, 8)]
    assert sim.rate_limited >= 2  # the storm happened ...
    assert len(sim.billing_requests()) == 7 + sim.rate_limited  # ... and each 429 was retried once, after waiting
    assert time.monotonic() - started >= 2.5


def test_429_without_retry_after_uses_the_reset_header(sim: FastlySimulator, connect) -> None:
    sim.rate_limit, sim.rate_limit_window, sim.retry_after = 1, 1.0, False
    hook = hook_for(sim, connect, max_wait=5)
    hook.get_invoice(2025, 1)
    hook.get_invoice(2025, 2)
    assert sim.rate_limited >= 1 and len(sim.billing_requests()) == 2 + sim.rate_limited


def test_429_storm_longer_than_the_retries_is_a_clear_error(sim: FastlySimulator, connect) -> None:
    sim.rate_limit, sim.rate_limit_window = 0, 3600
    hook = hook_for(sim, connect, max_retries=2)
    with pytest.raises(FastlyApiError) as caught:
        hook.get_invoice(2025, 1)
    assert caught.value.status == 429
    assert "You have exceeded your hourly rate limit" in str(caught.value)
    assert len(sim.billing_requests()) == 3


def test_5xx_burst_is_retried(sim: FastlySimulator, connect) -> None:
    sim.inject("status", times=4, status=503)
    assert hook_for(sim, connect).get_invoice(2025, 3)["invoice_id"]
    assert len(sim.billing_requests()) == 5


def test_read_timeout_is_retried_then_reported(sim: FastlySimulator, connect) -> None:
    sim.inject("delay", times=1, seconds=1.0)
    hook = hook_for(sim, connect, timeout=0.3)
    assert hook.get_invoice(2025, 3)["invoice_id"]
    sim.inject("delay", times=3, seconds=1.0)
    with pytest.raises(FastlyApiError, match=r"unreachable on GET /billing/v2/year/2025/month/04: ReadTimeout after 3"):
        hook_for(sim, connect, timeout=0.3, max_retries=2).get_invoice(2025, 4)


def test_connection_dropped_mid_body_is_retried(sim: FastlySimulator, connect) -> None:
    sim.inject("drop", times=2)
    assert hook_for(sim, connect).get_invoice(2025, 5)["start_time"].startswith("2025-05")
    assert len(sim.billing_requests()) == 3


@pytest.mark.parametrize("kind", ["truncate"])
def test_truncated_json_is_a_clear_error(sim: FastlySimulator, connect, kind: str) -> None:
    sim.inject(kind)
    with pytest.raises(
        FastlyApiError, match=r"Unusable Fastly API answer \(200\) .*not valid JSON \(a application/json"
    ):
        hook_for(sim, connect).get_invoice(2025, 5)


def test_html_error_page_is_a_clear_error(sim: FastlySimulator, connect) -> None:
    sim.inject("status", times=1, status=404, html=True)
    with pytest.raises(FastlyApiError, match=r"404 .*a text/html body without a Fastly error message"):
        hook_for(sim, connect).get_invoice(2025, 5)


def test_json_body_labelled_html_is_read(sim: FastlySimulator, connect) -> None:
    sim.inject("content_type")
    assert hook_for(sim, connect).get_invoice(2025, 5)["total"]["cost"] > 0


def test_pdf_cut_in_half_is_fetched_again_whole(sim: FastlySimulator, connect, tmp_path: Path) -> None:
    sim.pdf_padding = 2 << 20
    sim.inject("drop")
    target = tmp_path / "invoice.pdf"
    hook_for(sim, connect).download_invoice(target, fmt="pdf", year=2025, month=5)
    assert target.read_bytes() == b"".join(invoice_pdf(sim.invoice(sim.customer_id, 2025, 5), sim.pdf_padding)[1])
    assert [p.name for p in tmp_path.iterdir()] == ["invoice.pdf"]


def test_pdf_cut_every_time_leaves_no_file(sim: FastlySimulator, connect, tmp_path: Path) -> None:
    sim.pdf_padding = 2 << 20
    sim.inject("drop", times=10)
    target = tmp_path / "invoice.pdf"
    target.write_bytes(b"the previous good copy")
    with pytest.raises(FastlyApiError, match="download broken off"):
        hook_for(sim, connect, max_retries=1).download_invoice(target, fmt="pdf", year=2025, month=5)
    assert target.read_bytes() == b"the previous good copy"
    assert [p.name for p in tmp_path.iterdir()] == ["invoice.pdf"]


def test_trigger_rides_out_5xx_and_drops(sim: FastlySimulator, connect) -> None:
    import asyncio

    from airflow_provider_fastly_billing.triggers.billing import InvoiceMtdTrigger

    connect("fastly_default", {**sim.connection(), "extra": {"max_wait": 0.01}})
    sim.mtd_pending = 1
    sim.inject("status", times=2, status=502)
    sim.inject("reset")

    async def first_event() -> dict:
        trigger = InvoiceMtdTrigger(sim.customer_id, poll_interval=0.01, end_time=time.time() + 30)
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    assert asyncio.run(first_event())["status"] == "success"
