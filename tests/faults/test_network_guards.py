"""
The network rows of issue 10 against the hostile server, in the sync, download and deferred paths.

Every case ends in a clear ``FastlyApiError`` (an error event in the deferred path) within a bounded
time, the token reaches no host but the API's, and no error text holds it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.api import v3
from airflow_provider_fastly_billing.exceptions import FastlyApiError
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.triggers.billing import InvoiceMtdTrigger
from tests.faults.hostile import Answer, HostileServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "hostile-TOKEN-5d1c9e-must-never-leave"
FAST = {"timeout": 1.5, "deadline": 3, "max_retries": 1, "max_wait": 0.01, "stream_body_bytes": 1}
"""``stream_body_bytes``: every JSON answer of ``get_invoice_parts`` is read in parts (the "parts" path)."""
PATHS = ["sync", "parts", "download", "deferred"]
MiB = 1 << 20


@pytest.fixture
def api(connect) -> Iterator[HostileServer]:
    with HostileServer() as server:
        connect("fastly_default", server.connection(TOKEN, **FAST))
        yield server


def failure(path: str, tmp_path: Path) -> str:
    """The error text a user sees when ``path`` meets the scripted answers; a download leaves no file."""
    if path == "deferred":
        trigger = InvoiceMtdTrigger("abc123", poll_interval=0.01, end_time=time.time() + 120, timeout=120)

        async def first_event() -> dict:
            async for event in trigger.run():
                return event.payload
            raise AssertionError("no event")

        event = asyncio.run(first_event())
        assert event["status"] == "error", event
        return event["message"]
    hook = BillingHook()
    with pytest.raises(FastlyApiError) as caught:
        if path == "sync":
            hook.get_invoice(2025, 1)
        elif path == "parts":
            list(hook.get_invoice_parts(2025, 1))
        else:
            hook.download_invoice(tmp_path / "invoice.pdf", fmt="pdf", year=2025, month=1)
    assert list(tmp_path.iterdir()) == []
    assert TOKEN not in f"{caught.value} {caught.value!r} {caught.value.args}"
    return str(caught.value)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("path", PATHS)
def test_a_redirect_is_refused_and_the_other_host_sees_nothing(
    api: HostileServer, tmp_path: Path, path: str, status: int
) -> None:
    with HostileServer() as other:
        other.script(Answer(200, b'{"stolen": true}'))
        api.script(Answer(status, b"", headers={"Location": f"{other.url}/steal?key={TOKEN}"}))
        message = failure(path, tmp_path)
        assert other.seen == []
    host = other.url.removeprefix("http://")
    assert f"Unusable Fastly API answer ({status}) on GET /billing/v2/" in message
    assert f"the API redirected to {host}; redirects are not followed" in message
    assert "steal" not in message and TOKEN not in message
    assert len(api.seen) == 1  # refused at once, not retried
    assert api.tokens_seen() == {TOKEN}


@pytest.mark.parametrize("part", ["body", "headers"])
@pytest.mark.parametrize("path", PATHS)
def test_an_answer_trickled_at_one_byte_a_second_fails_within_the_deadline(
    api: HostileServer, tmp_path: Path, path: str, part: str
) -> None:
    """
    Bound: 2 attempts x deadline 3 s + backoff: about 6 s; asserted < 15 s.

    Each byte arrives within the 1.5 s read timeout, so only the total deadline can end the attempt.
    """
    body = b'{"invoice_id": 1, "pad": "' + b"x" * 500 + b'"}'
    api.script(Answer(200, body, trickle=1.0, trickle_head=part == "headers"))
    started = time.monotonic()
    message = failure(path, tmp_path)
    assert time.monotonic() - started < 15
    assert "deadline of 3 s exceeded (connect, headers and body; extra 'deadline') after 2 tries" in message
    assert len(api.seen) == 2  # one retry, from one budget


def test_a_short_deadline_holds_after_a_request_under_a_long_one(connect, api: HostileServer) -> None:
    """
    The watchdog sleeps towards the earliest deadline it knows, 600 s here; a shorter one must wake it.

    Bound: one attempt, deadline 3 s; asserted < 15 s. The headers trickle: only the watchdog can end that.
    """
    connect("fastly_patient", api.connection(TOKEN, deadline=600))
    trickled = b'{"invoice_id": 2, "pad": "' + b"x" * 500 + b'"}'
    api.script(Answer(200, b'{"invoice_id": 1}'), Answer(200, trickled, trickle=1.0, trickle_head=True))
    assert BillingHook("fastly_patient").get_invoice(2025, 1) == {"invoice_id": 1}
    started = time.monotonic()
    with pytest.raises(FastlyApiError, match=r"deadline of 3 s exceeded .* after 1 tries"):
        BillingHook(max_retries=0).get_invoice(2025, 1)
    assert time.monotonic() - started < 15


def endless(path: str, query: dict[str, str]) -> bytes:
    """A page with one invoice and a cursor never seen before, announcing 3 invoices in all."""
    n = int(query.get("cursor", "c0")[1:]) + 1
    page = {"data": [{"invoice_id": str(n)}], "meta": {"next_cursor": f"c{n}", "limit": 1, "total": 3}}
    return json.dumps(page).encode()


def test_pages_that_never_end_stop_past_the_announced_total(api: HostileServer) -> None:
    """Bound: ceil(total / limit) + 2 = 5 pages, then an error naming the cursor."""
    api.script(Answer(200, endless))
    with pytest.raises(FastlyApiError) as caught:
        list(BillingHook().list_invoices(page_size=1))
    assert str(caught.value) == (
        "Unusable Fastly API answer (200) on GET /billing/v3/invoices?limit=1&cursor=c4: page 5 names a next "
        "cursor, beyond the 5 pages that meta.total=3 and meta.limit=1 allow: cursor 'c5'"
    )
    assert len(api.seen) == 5


def test_an_empty_page_with_a_next_cursor_is_refused(api: HostileServer) -> None:
    api.script(Answer(200, b'{"data": [], "meta": {"next_cursor": "more", "limit": 200}}'))
    with pytest.raises(FastlyApiError, match=r"page 1 is empty but names a next cursor: cursor 'more'"):
        list(BillingHook().list_invoices())
    assert len(api.seen) == 1


def test_pages_without_a_total_stop_at_the_absolute_cap() -> None:
    """The walk itself, fed in memory: 10,000 full pages without ``meta.total``, each naming a new cursor."""
    fetched = []

    def fetch(query):
        fetched.append(query)
        return {"data": [{"invoice_id": len(fetched)}], "meta": {"next_cursor": f"c{len(fetched)}"}}

    walk = v3.walk(fetch, v3.INVOICES_PATH, {"limit": "200"})
    with pytest.raises(FastlyApiError, match=r"page 10000 names a next cursor, beyond the 10000 pages .*'c10000'"):
        list(walk)
    assert len(fetched) == v3.MAX_PAGES


def a_json_list(size: int) -> Answer:
    """About ``size`` bytes of valid JSON, made as it is sent, announcing no length."""
    item = b'{"invoice_id": "1234567", "monthly_transaction_amount": "12.34"},'
    piece = item * (MiB // len(item))

    def chunks() -> Iterator[bytes]:
        yield b'{"data": ['
        for _ in range(size // len(piece)):
            yield piece
        yield b'{}], "meta": {}}'

    return Answer(200, chunks=chunks)


@pytest.mark.parametrize("announced", [True, False])
@pytest.mark.parametrize("path", ["sync", "parts", "deferred"])
def test_a_200_mb_json_body_is_refused_past_the_cap(connect, tmp_path: Path, path: str, announced: bool) -> None:
    """A 2 MiB cap against 200 MB: refused before reading when the length is announced, else at the cap."""
    with HostileServer() as api:
        connect("fastly_default", api.connection(TOKEN, **FAST, max_body_bytes=2 * MiB))
        answer = a_json_list(200 * 10**6)
        if announced:
            answer.length = 200 * 10**6
        api.script(answer)
        message = failure(path, tmp_path)
        sent = api.sent
    size = "announces 200000000 bytes" if announced else "is longer"
    assert f"the answer {size}, more than max_body_bytes=2097152 (a connection extra)" in message
    assert sent < 50 * 10**6  # the client stopped reading: the server could not send the rest


def test_downloads_have_no_cap(connect, tmp_path: Path) -> None:
    """A 70 MiB CSV, larger than the default JSON cap of 64 MiB, arrives whole."""
    row = b"2025-01,CDN,North America,1234.5678\n" * 1000
    count = 70 * MiB // len(row) + 1
    with HostileServer() as api:
        connect("fastly_default", api.connection(TOKEN))
        api.script(Answer(200, chunks=lambda: (row for _ in range(count)), headers={"Content-Type": "text/csv"}))
        target = tmp_path / "invoice.csv"
        BillingHook().download_invoice(target, fmt="csv", year=2025, month=1)
    assert target.stat().st_size == count * len(row) > 64 * MiB


@pytest.mark.parametrize("path", PATHS)
def test_a_401_that_echoes_the_token_is_masked(api: HostileServer, tmp_path: Path, path: str) -> None:
    echo = {"msg": f"Invalid token {TOKEN}", "detail": f"Fastly-Key was {TOKEN}"}
    api.script(Answer(401, json.dumps(echo).encode()))
    message = failure(path, tmp_path)
    assert "Fastly API error 401 on GET " in message
    assert message.endswith(": Invalid token *** (Fastly-Key was ***)")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"total": {"cost": NaN}}', "the answer holds NaN, which is not a number"),
        (b'{"total": {"cost": Infinity}}', "the answer holds Infinity, which is not a number"),
        (b'{"total": {"cost": -Infinity}}', "the answer holds -Infinity, which is not a number"),
        (b"[" * 100_000 + b"]" * 100_000, "the answer nests deeper than 64 levels"),
        (b'{"a": ' * 64 + b"{}" + b"}" * 64, "the answer nests deeper than 64 levels"),
        (b'{"a}]\\"": ' * 64 + b"{}" + b"}" * 64, "the answer nests deeper than 64 levels"),
    ],
    ids=["nan", "infinity", "-infinity", "100k-deep", "65-deep", "65-deep-brackets-in-keys"],
)
@pytest.mark.parametrize("path", ["sync", "parts", "deferred"])
def test_unsafe_json_is_refused_at_parse_time(api: HostileServer, tmp_path: Path, path: str, body, text) -> None:
    api.script(Answer(200, body))
    message = failure(path, tmp_path)
    assert message.startswith("Unusable Fastly API answer (200) on GET /billing/v2/")
    assert message.endswith(text + (" (NaN and Infinity are refused)" if "number" in text else ""))
    assert len(api.seen) == 1  # bad JSON is not retried


@pytest.mark.parametrize("key", ["a", 'a}]\\"'])
def test_64_levels_are_still_read(api: HostileServer, key: str) -> None:
    api.script(Answer(200, f'{{"{key}": '.encode() * 63 + b"{}" + b"}" * 63))
    invoice = BillingHook().get_invoice(2025, 1)
    for _ in range(63):
        invoice = invoice[json.loads(f'"{key}"')]
    assert invoice == {}
