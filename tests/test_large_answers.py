"""A large JSON invoice read in parts (``get_invoice_parts``): the frames, rows, sums and refusals of the whole."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_fastly_billing.api.transport import parse_json
from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyDataError
from airflow_provider_fastly_billing.frames import invoice_parts_to_frames, invoice_to_frames, to_python
from airflow_provider_fastly_billing.hooks.billing import BillingHook
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from airflow_provider_fastly_billing.warehouse import load_frames
from tests.dagrun import run_dag
from tests.faults.hostile import Answer, HostileServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LINE_ITEMS = 6_500
PART_ITEMS = 1_000
STREAM_ABOVE = 1 << 20
FETCHED = datetime(2025, 7, 1, tzinfo=timezone.utc)


def large_invoice() -> dict[str, Any]:
    """A real-shaped v2 invoice with :data:`LINE_ITEMS` line items, their lines numbered in order."""
    invoice = parse_json(to_json(FastlySimulator().invoice(FastlySimulator().customer_id, 2025, 6)))
    items = invoice["line_items"]
    invoice["line_items"] = [dict(items[n % len(items)], line_number=n + 1) for n in range(LINE_ITEMS)]
    return invoice


@pytest.fixture
def serve(connect) -> Iterator[Any]:
    """Serve an invoice as June 2025's answer; the connection reads answers above 1 MiB in parts."""
    started: list[FastlySimulator] = []

    def start(invoice: dict[str, Any]) -> FastlySimulator:
        sim = FastlySimulator(fixed_invoices={(2025, 6): invoice}).start()
        started.append(sim)
        connect("fastly_default", {**sim.connection(), "extra": {"stream_body_bytes": STREAM_ABOVE}})
        return sim

    yield start
    for sim in started:
        sim.stop()


def parts(**kwargs: Any) -> list[dict[str, Any]]:
    return list(BillingHook(max_wait=0.01).get_invoice_parts(2025, 6, part_items=PART_ITEMS, **kwargs))


def test_a_large_answer_comes_in_parts_that_make_the_whole(serve) -> None:
    invoice = large_invoice()
    serve(invoice)
    whole = BillingHook().get_invoice(2025, 6)
    pieces = parts()
    assert len(to_json(invoice)) > STREAM_ABOVE
    assert [len(p["line_items"]) for p in pieces] == [PART_ITEMS] * 6 + [500]
    assert [item for p in pieces for item in p["line_items"]] == whole["line_items"] == invoice["line_items"]
    for piece in pieces:
        assert list(piece) == list(whole)
        assert {k: v for k, v in piece.items() if k != "line_items"} == {
            k: v for k, v in whole.items() if k != "line_items"
        }


def test_a_small_answer_is_one_part(sim: FastlySimulator, connect) -> None:
    connect("fastly_default", sim.connection())
    assert parts() == [BillingHook().get_invoice(2025, 6)]


def test_frames_rows_and_sums_equal_the_whole_answers(serve, connect, tmp_path: Path) -> None:
    invoice = large_invoice()
    serve(invoice)
    whole = invoice_to_frames(BillingHook().get_invoice(2025, 6), FETCHED)
    streamed = invoice_parts_to_frames(iter(parts()), FETCHED)
    for name, table in whole.tables.items():
        assert table.equals(streamed.tables[name]), name
    connect("warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    assert load_frames(whole, "warehouse", table_prefix="whole_") == load_frames(
        streamed, "warehouse", table_prefix="parts_"
    )
    import duckdb

    with duckdb.connect(str(tmp_path / "w.duckdb")) as db:
        for table in ("invoices", "line_items", "regions", "extras"):
            rows = [db.execute(f"SELECT * FROM {p}{table} ORDER BY ALL").fetchall() for p in ("whole_", "parts_")]
            assert rows[0] == rows[1], table
        (total,) = db.execute("SELECT SUM(amount) FROM parts_line_items").fetchone()
    assert total == sum(item["amount"] for item in invoice["line_items"])
    assert sum(to_python(streamed.line_items["amount"])) == total


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("amount", Decimal("1E+30"), "has 31 integer digits"),
        ("line_number", "x", "is not an integer"),
        ("created_at", "yesterday", "is not an ISO 8601 date-time"),
        ("description", "a\x00b", "holds a NUL character"),
    ],
)
def test_a_bad_value_deep_in_a_large_answer_is_named_as_in_the_whole(serve, field: str, value: Any, problem: str):
    invoice = large_invoice()
    invoice["line_items"][4321][field] = value
    serve(invoice)
    with pytest.raises(FastlyDataError) as whole:
        invoice_to_frames(BillingHook().get_invoice(2025, 6))
    with pytest.raises(FastlyDataError) as streamed:
        invoice_parts_to_frames(parts())
    assert str(streamed.value) == str(whole.value)
    line = "line 4322 of line_items" if field == "line_number" else "line 4322 of line_items, "
    assert line in str(streamed.value) and f"field {field}" in str(streamed.value) and problem in str(streamed.value)
    assert str(streamed.value).startswith(f"invoice {invoice['invoice_id']} (customer {invoice['customer_id']})")


def test_a_line_number_out_of_order_is_named_by_its_place_in_the_whole(serve) -> None:
    invoice = large_invoice()
    invoice["line_items"][4321].update(line_number=9, amount=Decimal("1E+30"))
    serve(invoice)
    with pytest.raises(FastlyDataError, match=r"line 9 of line_items \(line_items\[4321\]\), field amount"):
        invoice_parts_to_frames(parts())


def nested(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("unknown", "message"),
    [
        ("NaN", "the answer holds NaN, which is not a number (NaN and Infinity are refused)"),
        ("-Infinity", "the answer holds -Infinity, which is not a number (NaN and Infinity are refused)"),
        (json.dumps(nested(62)), "the answer nests deeper than 64 levels"),
        (json.dumps(nested(62)).replace("{}", '{"]]}": "\\"[["}'), "the answer nests deeper than 64 levels"),
        ("[1,]", "the answer is not valid JSON (a application/json body)"),
    ],
    ids=["nan", "-infinity", "65-deep", "65-deep-brackets-in-strings", "broken"],
)
def test_hostile_json_deep_in_a_large_answer_is_refused_as_in_the_whole(connect, unknown: str, message: str) -> None:
    """Line item 4321 gets a field ``unknown``: the invoice is level 1, the array 2, the item 3, the field 4."""
    invoice = large_invoice()
    invoice["line_items"][4321]["unknown"] = "MARK"
    body = to_json(invoice).replace(b'"MARK"', unknown.encode())
    with HostileServer() as api:
        connect("fastly_default", api.connection(max_retries=0, stream_body_bytes=STREAM_ABOVE))
        api.script(Answer(200, body))
        errors = []
        for read in (lambda: BillingHook().get_invoice(2025, 6), parts):
            with pytest.raises(FastlyApiError) as caught:
                read()
            errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert errors[1].endswith(message)


@pytest.mark.parametrize("unknown", [json.dumps(nested(61)), json.dumps(nested(61)).replace("{}", '{"]]}": "\\"[["}')])
def test_64_levels_deep_in_a_large_answer_are_read(connect, unknown: str) -> None:
    invoice = large_invoice()
    invoice["line_items"][4321]["unknown"] = "MARK"
    body = to_json(invoice).replace(b'"MARK"', unknown.encode())
    with HostileServer() as api:
        connect("fastly_default", api.connection(stream_body_bytes=STREAM_ABOVE))
        api.script(Answer(200, body))
        streamed = [item for part in parts() for item in part["line_items"]]
    assert streamed == parse_json(body)["line_items"]


def test_the_transfer_loads_a_large_invoice_in_parts(serve, connect, tmp_path: Path) -> None:
    invoice = large_invoice()
    sim = serve(invoice)
    connect("warehouse", {"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")})
    run = run_dag(
        "transfer_large_answer",
        """
        from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
        with DAG(DAG_ID, schedule=None, start_date=START) as dag:
            InvoiceToSqlOperator(task_id="load", warehouse_conn_id="warehouse", year="2025", month="6")
        """,
    )
    assert run.state == "success"
    summary = run.xcom["load"]
    assert summary["rows"]["line_items"] == LINE_ITEMS
    assert Decimal(summary["total_cost"]) == invoice["total"]["cost"]
    assert [r.path for r in sim.billing_requests()] == ["/billing/v2/year/2025/month/06"]
    import duckdb

    with duckdb.connect(str(tmp_path / "w.duckdb")) as db:
        (total,) = db.execute("SELECT SUM(amount) FROM fastly_line_items").fetchone()
    assert total == sum(item["amount"] for item in invoice["line_items"])
