"""
Broken data from the API: each bad value is a ``FastlyDataError`` naming the invoice, the line, the field
and the value, raised before anything is written; the same invoice twice loads once or is refused.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_fastly_billing.api.v3 import exact_v3_amount
from airflow_provider_fastly_billing.exceptions import FastlyApiError, FastlyDataError
from airflow_provider_fastly_billing.frames import (
    NUMERIC_PRECISION,
    NUMERIC_SCALE,
    SCHEMA,
    InvoiceFrames,
    estimate_to_frames,
    estimates_to_frames,
    invoice_to_frames,
    invoices_to_frames,
    to_python,
)
from airflow_provider_fastly_billing.hooks.billing import parse_json
from airflow_provider_fastly_billing.testing import FastlySimulator
from airflow_provider_fastly_billing.testing.simulator import to_json
from tests.dagrun import run_dag
from tests.faults.hostile import Answer, HostileServer

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import Warehouse

FETCHED = datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc)
SIM = FastlySimulator(account_customers=2)
CUSTOMER = SIM.customer_id
DATA = Path(__file__).resolve().parents[1] / "data"
TABLES = tuple(SCHEMA)
ROUNDED = "the warehouse (DECIMAL(38, 15)) keeps 15 and would round it"
TOO_BIG = "the warehouse (DECIMAL(38, 15)) holds 23"


def invoice(month: int = 3) -> dict[str, Any]:
    """A real-shaped v2 invoice as the hook returns it."""
    return parse_json(to_json(SIM.invoice(CUSTOMER, 2025, month)))


def name(doc: dict[str, Any]) -> str:
    return f"invoice {doc['invoice_id']} (customer {doc['customer_id']})"


def refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(FastlyDataError) as error:
        invoice_to_frames(doc, FETCHED)
    return str(error.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("twelve dollars", "'twelve dollars' is not a plain decimal number"),
        ("1,234.56", "'1,234.56' is not a plain decimal number"),
        ("$12.00", "'$12.00' is not a plain decimal number"),
        ({}, "{} is an object, expected a plain decimal number"),
        (True, "True is a boolean, expected a plain decimal number"),
        ([12], "[12] is a list, expected a plain decimal number"),
        ("", "'' is not a plain decimal number"),
        (" 12 ", "' 12 ' is not a plain decimal number"),
        ("1_000", "'1_000' is not a plain decimal number"),
        ("NaN", "'NaN' is not a plain decimal number"),
        ("-Infinity", "'-Infinity' is not a plain decimal number"),
        ("inf", "'inf' is not a plain decimal number"),
        (Decimal("NaN"), "Decimal('NaN') is not a finite number"),
        (Decimal("sNaN"), "Decimal('sNaN') is not a finite number"),
        (Decimal("Infinity"), "Decimal('Infinity') is not a finite number"),
        (Decimal("-Infinity"), "Decimal('-Infinity') is not a finite number"),
        (float("nan"), "nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        (Decimal("0.12345678901234567891"), f"Decimal('0.12345678901234567891') has 20 fraction digits: {ROUNDED}"),
        ("1e-16", f"'1e-16' has 16 fraction digits: {ROUNDED}"),
        (10**30, f"{10**30} has 31 integer digits: {TOO_BIG}"),
        (Decimal("1E+30"), f"Decimal('1E+30') has 31 integer digits: {TOO_BIG}"),
        ("-" + "9" * 24, f"'-{'9' * 24}' has 24 integer digits: {TOO_BIG}"),
    ],
    ids=repr,
)
def test_an_amount_that_is_not_an_exact_finite_decimal_is_refused(value: Any, problem: str) -> None:
    doc = invoice()
    doc["line_items"][3]["amount"] = value
    assert refusal(doc) == f"{name(doc)}: line 4 of line_items, field amount: {problem}"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (Decimal("1E+999999999"), "Decimal('1E+999999999') has 1000000000 integer digits"),
        (Decimal("-1E-999999999"), "Decimal('-1E-999999999') has 999999999 fraction digits"),
        ("1e999999999999999999999", "'1e999999999999999999999' has an exponent beyond any decimal number"),
        (10**100_000, "an integer of 100001 digits or so has 100001 integer digits"),
        ("9" * 100_000, f"'{'9' * 37}...{'9' * 38}' has 100000 integer digits"),
    ],
    ids=["1E+999999999", "-1E-999999999", "exponent overflow", "10**100000", "100000 nines"],
)
def test_extreme_numbers_are_refused_at_once(value: Any, problem: str) -> None:
    doc = invoice()
    doc["line_items"][0]["amount"] = value
    started = time.monotonic()
    message = refusal(doc)
    assert time.monotonic() - started < 10  # a guard: 1E+999999999 must never be expanded to its digits
    assert message.startswith(f"{name(doc)}: line 1 of line_items, field amount: {problem}")


@pytest.mark.parametrize("zero", ["0E-9999999", "-0E+9999999", "0.000000000000000000000"])
def test_a_zero_with_any_exponent_is_stored_as_zero(zero: str) -> None:
    """JSON allows ``0e-9999999``; pyarrow crashed the worker on it. It is exactly zero, so it is stored as 0."""
    doc = invoice()
    doc["line_items"][0]["amount"] = parse_json(f'{{"a": {zero}}}'.encode())["a"]
    amounts = invoice_to_frames(doc, FETCHED).line_items["amount"]
    assert amounts[0] == 0 and amounts[1] == doc["line_items"][1]["amount"]


def test_the_warehouse_limits_are_decimal_38_15() -> None:
    """The refusals above are the limits of the warehouses' money columns, not of Python."""
    assert (NUMERIC_PRECISION, NUMERIC_SCALE) == (38, 15)
    doc = invoice()
    doc["line_items"][0]["units"] = Decimal("9" * 23 + "." + "9" * 15)
    doc["line_items"][1]["units"] = Decimal("5.140000000000001")
    units = invoice_to_frames(doc, FETCHED).line_items["units"]
    assert (units[0], units[1]) == (Decimal("9" * 23 + "." + "9" * 15), Decimal("5.140000000000001"))


def test_too_many_digits_in_the_json_text_are_refused_not_rounded() -> None:
    doc = invoice()
    doc["line_items"][0]["units"] = "@units@"
    body = to_json(doc).replace(b'"@units@"', b"4613.77750076712345678901")
    assert refusal(parse_json(body)) == (
        f"{name(doc)}: line 1 of line_items, field units: Decimal('4613.77750076712345678901') "
        f"has 20 fraction digits: {ROUNDED}"
    )


def set_at(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("total", "cost"), "$12.00", "field total.cost: '$12.00' is not a plain decimal number"),
        (("total", "requests"), Decimal("NaN"), "field total.requests: Decimal('NaN') is not a finite number"),
        (("total", "extras", 0, "recurring"), "1,234.56", "field total.extras[0].recurring: '1,234.56' is not"),
        (("regions", "usa", "cost"), True, "field regions.usa.cost: True is a boolean"),
        (("regions", "usa", "bandwidth", "total"), {}, "field regions.usa.bandwidth.total: {} is an object"),
        (
            ("regions", "usa", "bandwidth", "tiers", 0, "price"),
            "twelve dollars",
            "field regions.usa.bandwidth.tiers[0].price: 'twelve dollars' is not",
        ),
        (("start_time",), "yesterday", "field start_time: 'yesterday' is not an ISO 8601 date-time"),
        (("end_time",), "2025-02-30", "field end_time: '2025-02-30' is not an ISO 8601 date-time"),
        (("status", "sent_at"), "", "field status.sent_at: '' is not an ISO 8601 date-time"),
        (("start_time",), 20250301, "field start_time: 20250301 is an integer, expected an ISO 8601 date-time"),
        (("line_items", 2, "created_at"), "2025-02-30", "line 3 of line_items, field created_at: '2025-02-30' is"),
        (("line_items", 1, "line_number"), "seven", "line 2 of line_items, field line_number: 'seven' is not an"),
        (("line_items", 1, "line_number"), Decimal("1.5"), "line 2 of line_items, field line_number: Decimal('1.5')"),
        (("line_items", 1, "line_number"), True, "line 2 of line_items, field line_number: True is a boolean"),
        (("line_items", 1, "line_number"), 10**30, "line 2 of line_items, field line_number: 1" + "0" * 30 + " is out"),
        (("line_items", 1, "description"), True, "line 2 of line_items, field description: True is a boolean"),
        (("line_items", 1, "description"), ["x"], "line 2 of line_items, field description: ['x'] is a list"),
        (("vendor_state",), {"up": 1}, "field vendor_state: {'up': 1} is an object, expected a string"),
    ],
    ids=repr,
)
def test_a_bad_value_anywhere_names_its_field(path: tuple[Any, ...], value: Any, where: str) -> None:
    doc = invoice()
    set_at(path, value)(doc)
    assert refusal(doc).startswith(f"{name(doc)}: {where}")


def test_a_line_is_named_by_its_line_number_and_its_place() -> None:
    doc = invoice()
    doc["line_items"][1]["line_number"] = 12
    doc["line_items"][1]["rate_per_unit"] = "0.12 USD"
    assert refusal(doc) == (
        f"{name(doc)}: line 12 of line_items (line_items[1]), field rate_per_unit: '0.12 USD' is not a plain decimal "
        "number"
    )


def test_v3_invoices_and_estimates_are_named_too() -> None:
    v3 = parse_json((DATA / "v3_invoice.synthetic.json").read_bytes())
    v3["transaction_line_items"][1]["amount"] = "12 USD"
    assert refusal(v3) == (
        f"{name(v3)}: line 2 of transaction_line_items, field amount: '12 USD' is not a plain decimal number"
    )
    v3 = parse_json((DATA / "v3_invoice.synthetic.json").read_bytes())
    v3["monthly_transaction_amount"] = "1,234.56"
    assert refusal(v3).startswith(f"{name(v3)}: field monthly_transaction_amount: '1,234.56' is not")
    estimate = parse_json(to_json(SIM.estimate(CUSTOMER, 2025, 6)))
    estimate["line_items"][0]["per_unit_cost"] = "n/a"
    with pytest.raises(FastlyDataError, match=r"^estimate .*\(customer \w+\): line 1 of line_items, field per_unit_"):
        estimate_to_frames(estimate, FETCHED)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", " 12 ", "1_000", "12 USD"])
def test_the_hook_converts_only_plain_v3_amount_strings(amount: str) -> None:
    """What the hook hands on (XCom included) is never a number Fastly did not write: the frames refuse it."""
    v3 = parse_json((DATA / "v3_invoice.synthetic.json").read_bytes())
    v3["monthly_transaction_amount"] = amount
    assert exact_v3_amount(v3)["monthly_transaction_amount"] == amount
    assert f"field monthly_transaction_amount: {amount!r}" in refusal(v3)
    v3["monthly_transaction_amount"] = "-1234.50"
    assert exact_v3_amount(v3)["monthly_transaction_amount"] == Decimal("-1234.50")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("total",), [], "total is a list, expected an object"),
        (("line_items",), {"0": {}}, "line_items is an object, expected a list"),
        (("line_items", 4), "North America Bandwidth", "line_items[4] is a string, expected an object"),
        (("line_items", 4), None, "line_items[4] is null, expected an object"),
        (("regions",), [], "regions is a list, expected an object"),
        (("regions", "usa"), [1], "regions.usa is a list, expected an object"),
        (("regions", "usa", "bandwidth"), [1], "regions.usa.bandwidth is a list, expected an object"),
        (("regions", "usa", "bandwidth", "tiers"), {}, "regions.usa.bandwidth.tiers is an object, expected a list"),
        (
            ("regions", "usa", "bandwidth", "tiers", 0),
            "x",
            "regions.usa.bandwidth.tiers[0] is a string, expected an object",
        ),
        (("status",), 5, "status is an integer, expected an object"),
        (("total", "extras"), "TLS", "total.extras is a string, expected a list"),
        (("total", "extras", 0), 7, "total.extras[0] is an integer, expected an object"),
    ],
    ids=repr,
)
def test_a_wrong_shape_is_an_api_error_naming_the_path(path: tuple[Any, ...], value: Any, message: str) -> None:
    doc = invoice()
    set_at(path, value)(doc)
    with pytest.raises(FastlyApiError) as error:
        invoice_to_frames(doc, FETCHED)
    assert str(error.value) == f"{name(doc)}: {message}"


def test_an_input_that_is_not_an_object_or_an_id_of_the_wrong_kind() -> None:
    with pytest.raises(FastlyDataError, match=r"^input #2 is a list, expected an invoice object$"):
        invoices_to_frames([invoice(), ["x"]], FETCHED)
    doc = invoice()
    doc["customer_id"] = ["x"]
    shown = "field customer_id: ['x'] is a list, expected an id"
    assert refusal(doc) == f"invoice {doc['invoice_id']} (customer ['x']): {shown}"


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("total", "surprise"), "total.surprise[0][0]"),
        (("line_items", 6, "surprise"), "line_items[6].surprise[0][0][0]"),
        (("total", "extras", 0, "surprise"), "total.extras[0].surprise"),
        (("surprise",), "surprise[0][0][0]"),
    ],
)
def test_deep_nesting_is_refused_with_its_path_not_a_recursion_error(path: tuple[Any, ...], where: str) -> None:
    doc = invoice()
    set_at(path, nested(100_000))(doc)
    assert refusal(doc) == f"{name(doc)}: {where} is nested too deeply to store as JSON"


def test_deep_nesting_in_a_number_field_is_shown_short() -> None:
    doc = invoice()
    doc["line_items"][0]["amount"] = nested(100_000)
    shown = "[[[[[[[...]]]]]]] is a list, expected a plain decimal number"
    assert refusal(doc) == f"{name(doc)}: line 1 of line_items, field amount: {shown}"


def test_nan_in_an_unknown_field_is_refused() -> None:
    doc = invoice()
    doc["line_items"][6]["carbon_grams"] = float("nan")
    message = refusal(doc)
    assert message.startswith(f"{name(doc)}: line_items[6].carbon_grams cannot be stored as JSON (Out of range float")


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (
            ("line_items", 1, "description"),
            "Bandwidth\x00",
            "line 2 of line_items, field description: 'Bandwidth\\x00'",
        ),
        (("total", "plan_name"), "\x00", "field total.plan_name: '\\x00'"),
        (("customer_id",), CUSTOMER + "\x00", f"field customer_id: '{CUSTOMER}\\x00'"),
    ],
)
def test_a_nul_character_is_refused(path: tuple[Any, ...], value: str, where: str) -> None:
    doc = invoice()
    set_at(path, value)(doc)
    message = refusal(doc)
    assert where in message and "holds a NUL character" in message
    assert message.startswith(f"invoice {doc['invoice_id']} (customer ")


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("line_items", 1, "description"), "line 2 of line_items, field description: 'Band\\ud800'"),
        (("total", "plan_name"), "field total.plan_name: 'Band\\ud800'"),
        (("customer_id",), "field customer_id: 'Band\\ud800'"),
    ],
)
def test_a_lone_surrogate_is_refused(path: tuple[Any, ...], where: str) -> None:
    """JSON's ``"\\ud800"`` decodes to a string no database can store: an error naming where, not a crash."""
    doc = invoice()
    set_at(path, parse_json(b'"Band\\ud800"'))(doc)
    message = refusal(doc)
    assert where in message and message.endswith("holds a lone surrogate, which is not valid Unicode")


def test_a_nul_character_in_a_region_name_is_refused() -> None:
    doc = invoice()
    doc["regions"]["us\x00a"] = doc["regions"].pop("usa")
    assert refusal(doc) == (
        f"{name(doc)}: field regions (a region's name): 'us\\x00a' holds a NUL character, which PostgreSQL cannot store"
    )


def test_the_same_invoice_twice_is_loaded_once() -> None:
    first, other = invoice(3), invoice(4)
    frames = invoices_to_frames([first, other, copy.deepcopy(first)], FETCHED)
    assert frames.load_keys == [
        f"v2/invoice/{CUSTOMER}/{first['invoice_id']}",
        f"v2/invoice/{CUSTOMER}/{other['invoice_id']}",
    ]
    assert len(frames.line_items) == len(first["line_items"]) + len(other["line_items"])
    assert sum(frames.invoices["cost"]) == first["total"]["cost"] + other["total"]["cost"]


def test_the_same_invoice_twice_with_different_content_is_refused() -> None:
    first, changed = invoice(3), invoice(3)
    changed["line_items"][0]["amount"] += 1
    with pytest.raises(FastlyDataError) as error:
        invoices_to_frames([first, invoice(4), changed], FETCHED)
    assert str(error.value) == f"{name(first)} appears twice with different content: inputs #1 and #3"


def test_the_same_estimate_twice() -> None:
    estimate = parse_json(to_json(SIM.estimate(CUSTOMER, 2025, 6)))
    assert len(estimates_to_frames([estimate, copy.deepcopy(estimate)], FETCHED).invoices) == 1
    changed = copy.deepcopy(estimate)
    changed["total"]["cost"] += 1
    with pytest.raises(FastlyDataError, match=r"appears twice with different content: inputs #1 and #2$"):
        estimates_to_frames([estimate, changed], FETCHED)


def test_concat_keeps_an_equal_load_once_and_refuses_a_different_one() -> None:
    first = invoice_to_frames(invoice(3), FETCHED)
    again = invoice_to_frames(invoice(3), datetime(2026, 11, 3, tzinfo=timezone.utc))
    other = invoice_to_frames(invoice(4), FETCHED)
    both = InvoiceFrames.concat([first, other, again])
    assert both.load_keys == first.load_keys + other.load_keys
    for table in TABLES:
        assert len(both.tables[table]) == len(first.tables[table]) + len(other.tables[table]), table
    assert list(both.line_items.index) == list(range(len(both.line_items)))
    changed = invoice(3)
    changed["vendor_state"] = "down"
    with pytest.raises(FastlyDataError) as error:
        InvoiceFrames.concat([first, other, invoice_to_frames(changed, FETCHED)])
    assert str(error.value) == f"{name(changed)} appears twice with different content: parts #1 and #3"


def test_duplicate_line_item_ids_inside_one_invoice_are_kept_as_rows() -> None:
    doc = invoice()
    doc["line_items"][1]["id"] = doc["line_items"][0]["id"]
    items = invoice_to_frames(doc, FETCHED).line_items
    assert len(items) == len(doc["line_items"])
    assert list(items["id"]).count(doc["line_items"][0]["id"]) == 2


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document: a key of an object or an index of a list."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.floats(),
        st.text(max_size=12),
        st.sampled_from(["twelve dollars", "2025-02-30", "1e999", "\x00", "NaN", "12"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)
DOC = invoice()
PATHS = paths(DOC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), JUNK), min_size=1, max_size=3))
def test_any_junk_anywhere_is_stored_exactly_or_refused_as_data(changes: list[tuple[tuple, Any]]) -> None:
    """Never a bare TypeError, AttributeError or RecursionError; and what loads is finite and fits the warehouse."""
    doc = copy.deepcopy(DOC)
    for path, value in changes:
        try:
            set_at(path, value)(doc)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced the container this path went through
    try:
        frames = invoice_to_frames(doc, FETCHED)
    except FastlyDataError as error:
        assert str(error).startswith("invoice ")
        return
    for table, columns in SCHEMA.items():
        for column, kind in columns.items():
            if kind == "numeric":
                for value in to_python(frames.tables[table][column]):
                    assert value is None or (type(value) is Decimal and value.is_finite())
                    assert value is None or -(10**23) < value < 10**23


def hostile_loads(warehouse: Warehouse, invoices: list[list[Any]]) -> str:
    return f"""
    from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
    with DAG(DAG_ID, schedule=None, start_date=START) as dag:
        InvoiceToSqlOperator(
            task_id="load", invoices={invoices!r}, warehouse_conn_id="{warehouse.conn_id}",
            schema={warehouse.schema!r}, max_workers=1,
        )
    """


def snapshot(wh: Warehouse) -> dict[str, list[tuple]]:
    return {t: sorted(wh.rows(f"SELECT * FROM {{{t}}}"), key=repr) for t in TABLES}


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (b'"twelve dollars"', "'twelve dollars' is not a plain decimal number"),
        (b"553.12345678901234567891", f"Decimal('553.12345678901234567891') has 20 fraction digits: {ROUNDED}"),
    ],
    ids=["words", "20 fraction digits"],
)
def test_a_broken_invoice_fails_the_run_and_the_warehouse_keeps_its_rows(
    warehouse: Warehouse, connect, capfd, amount: bytes, problem: str
) -> None:
    """Served over HTTP to InvoiceToSqlOperator in a real DAG run: nothing of the failed load is written."""
    good, broken = invoice(3), invoice(4)
    broken["line_items"][3]["amount"] = "@amount@"
    served = {str(good["invoice_id"]): to_json(good), str(broken["invoice_id"]): to_json(broken)}
    served[str(broken["invoice_id"])] = served[str(broken["invoice_id"])].replace(b'"@amount@"', amount)
    with HostileServer() as api:
        api.script(Answer(200, body=lambda path, query: served[path.rsplit("/", 1)[1]]))
        connect("fastly_default", api.connection())
        dag_id = f"broken_data_{warehouse.dialect}"
        assert run_dag(dag_id, hostile_loads(warehouse, [[CUSTOMER, good["invoice_id"]]])).state == "success"
        before = snapshot(warehouse)
        good["line_items"][0]["description"] = "changed since the first load"
        served[str(good["invoice_id"])] = to_json(good)
        pairs = [[CUSTOMER, good["invoice_id"]], [CUSTOMER, broken["invoice_id"]]]
        failed = run_dag(dag_id, hostile_loads(warehouse, pairs))
        assert len(api.seen) == 3
    assert failed.state == "failed"
    assert f"{name(broken)}: line 4 of line_items, field amount: {problem}" in capfd.readouterr().out
    assert snapshot(warehouse) == before
    assert [len(before[t]) for t in ("invoices", "line_items")] == [1, len(good["line_items"])]


def test_the_same_invoice_twice_in_a_users_list_loads_once(sim: FastlySimulator, connect, warehouse: Warehouse) -> None:
    connect("fastly_default", sim.connection())
    invoice_id = sim.invoice_ids(sim.customer_id)[1]
    pairs = [[sim.customer_id, invoice_id], [sim.customer_id, str(invoice_id)]]
    run = run_dag(f"twice_in_a_list_{warehouse.dialect}", hostile_loads(warehouse, pairs))
    assert run.state == "success"
    assert run.xcom["load"]["invoice_ids"] == [str(invoice_id)]
    expected = sim.invoice_by_id(sim.customer_id, invoice_id)
    assert warehouse.rows("SELECT invoice_id FROM {invoices}") == [(str(invoice_id),)]
    assert warehouse.rows("SELECT COUNT(*) FROM {line_items}") == [(len(expected["line_items"]),)]


@pytest.mark.parametrize("warehouse", ["duckdb"], indirect=True)
@pytest.mark.parametrize("same", [True, False], ids=["equal", "different"])
def test_the_same_v3_invoice_on_two_pages(warehouse: Warehouse, connect, capfd, same: bool) -> None:
    v3 = json.loads((DATA / "v3_invoice.synthetic.json").read_text())
    again = {**v3, "monthly_transaction_amount": v3["monthly_transaction_amount"] + (0 if same else 1)}
    pages = {
        "": {"data": [v3], "meta": {"next_cursor": "page2", "limit": 1, "total": 2}},
        "page2": {"data": [again], "meta": {"next_cursor": "", "limit": 1, "total": 2}},
    }
    with HostileServer() as api:
        api.script(Answer(200, body=lambda path, query: json.dumps(pages[query.get("cursor", "")]).encode()))
        connect("fastly_default", api.connection())
        run = run_dag(
            f"v3_pages_{same}",
            f"""
            from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
            with DAG(DAG_ID, schedule=None, start_date=START) as dag:
                InvoiceToSqlOperator(
                    task_id="load", year=2024, month=5, api_version="v3",
                    warehouse_conn_id="{warehouse.conn_id}", schema={warehouse.schema!r},
                )
            """,
        )
    if same:
        assert run.state == "success"
        assert warehouse.rows("SELECT invoice_id, cost FROM {invoices}") == [(v3["invoice_id"], Decimal("182.5"))]
        return
    assert run.state == "failed"
    expected = f"invoice {v3['invoice_id']} (customer {v3['customer_id']}) appears twice with different content: "
    assert expected + "inputs #1 and #2" in capfd.readouterr().out
