"""InvoiceMtdTrigger on its own, under asyncio, against the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.triggers.billing import InvoiceMtdTrigger

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def events(trigger: InvoiceMtdTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def make_trigger(customer: str, timeout: float = 30, **kwargs) -> InvoiceMtdTrigger:
    return InvoiceMtdTrigger(customer, poll_interval=0.02, end_time=time.time() + timeout, timeout=timeout, **kwargs)


def test_serialize_round_trips_without_the_token(fastly: FastlySimulator) -> None:
    trigger = make_trigger(fastly.customer_id, year="2025", month="06", fastly_conn_id="fastly_default")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_fastly_billing.triggers.billing.InvoiceMtdTrigger"
    clone = InvoiceMtdTrigger(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    assert fastly.token not in repr(kwargs)
    assert set(kwargs) == {
        "customer_id",
        "year",
        "month",
        "fastly_conn_id",
        "poll_interval",
        "end_time",
        "timeout",
        "api_version",
    }


def test_success_after_202s(fastly: FastlySimulator) -> None:
    fastly.mtd_pending = 4
    (event,) = events(make_trigger(fastly.customer_id))
    assert event["status"] == "success"
    assert event["estimate"]["customer_id"] == fastly.customer_id
    assert event["estimate"]["total"]["cost"] == str(event["estimate"]["total"]["cost"])
    assert len(fastly.billing_requests()) == 5
    assert fastly.token not in repr(event)


def test_error_event_for_an_account_without_estimates(fastly: FastlySimulator) -> None:
    fastly.no_estimate_customers.add(fastly.customer_id)
    (event,) = events(make_trigger(fastly.customer_id))
    assert event["status"] == "error"
    assert "Fastly API error 422" in event["message"] and "parent-pay account" in event["message"]


def test_bad_kwargs_are_an_error_event_before_any_request(fastly: FastlySimulator) -> None:
    (event,) = events(make_trigger("../../tokens/self"))
    assert event == {
        "status": "error",
        "message": "customer_id must be 1 to 64 letters and digits, got '../../tokens/self'",
    }
    assert fastly.requests == []


def test_timeout_event(fastly: FastlySimulator) -> None:
    fastly.mtd_pending = 10_000
    (event,) = events(make_trigger(fastly.customer_id, timeout=1.0))
    assert event["status"] == "timeout"
    assert (
        event["message"] == f"Fastly month-to-date estimate for customer {fastly.customer_id} was not ready after 1 s"
    )
    assert 2 <= len(fastly.billing_requests()) <= 51  # polls every 0.02 s for 1 s, the first after the setup


def test_429_retry_after_is_honoured(fastly: FastlySimulator) -> None:
    fastly.rate_limit, fastly.rate_limit_window = 2, 1.0
    fastly.mtd_pending = 3
    started = time.monotonic()
    (event,) = events(make_trigger(fastly.customer_id))
    assert event["status"] == "success"
    # 2 allowed, then 429 until the 1 s window resets: Retry-After is waited out, not hammered.
    assert fastly.rate_limited == 1
    assert time.monotonic() - started >= 0.9
    assert len(fastly.billing_requests()) == 4 + fastly.rate_limited


def test_v3_success_after_202s(fastly: FastlySimulator) -> None:
    fastly.mtd_pending = 2
    (event,) = events(make_trigger(None, api_version="v3"))
    assert event["status"] == "success"
    assert event["estimate"]["customer_id"] == fastly.customer_id
    assert [r.path for r in fastly.billing_requests()] == ["/billing/v3/invoices/month-to-date"] * 3


def test_v3_timeout_names_the_account(fastly: FastlySimulator) -> None:
    fastly.mtd_pending = 10_000
    (event,) = events(make_trigger(None, timeout=0.1, api_version="v3"))
    assert event == {
        "status": "timeout",
        "message": "Fastly month-to-date estimate for the token's account was not ready after 0 s",
    }


def test_one_client_serves_every_poll_and_retries_are_logged_as_in_a_worker(connect, capsys) -> None:
    """The triggerer's event loop builds one HTTP client per trigger run: every poll reuses its connection."""
    from tests.faults.hostile import Answer, HostileServer

    with HostileServer() as api:
        connect("fastly_default", api.connection(max_wait=0.01))
        estimate = b'{"customer_id": "abc123", "total": {"cost": 12.30}}'
        api.script(*[Answer(202, b"")] * 3, Answer(503, b'{"msg": "busy"}'), Answer(200, estimate))
        (event,) = events(make_trigger("abc123"))
    assert event == {"status": "success", "estimate": {"customer_id": "abc123", "total": {"cost": "12.30"}}}
    assert len(api.seen) == 5
    assert len({request.port for request in api.seen}) == 1  # one connection, so one client
    logged = capsys.readouterr().out
    assert "Fastly answered 503 on /billing/v2/account_customers/abc123/mtd_invoice; retry 1/5 in 0.0 s" in logged
