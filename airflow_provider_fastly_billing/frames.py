"""
Invoices and estimates as DataFrames, one per warehouse table, with fixed columns and types.

Tables (every one carries ``load_key``, the unit a load replaces, plus ``api_version``, ``invoice_id``
and ``customer_id``):

- ``invoices``: one row per invoice or estimate snapshot: period, status, every ``BillingTotal`` field,
  v3's statement fields, ``is_estimate``, ``fetched_at`` and ``raw``: the whole JSON answer but its
  line items, which are stored row by row in ``line_items``.
- ``line_items``: one row per line item, every documented v2 and v3 field, ``extra`` for unknown keys.
- ``regions``: one row per region x metric (``bandwidth``, ``requests``, ``percentile``) x tier.
- ``extras``: one row per ``BillingTotal`` extra.

Money and quantities are Arrow ``decimal128(38, 15)`` columns (``pd.ArrowDtype``; an element is a
``Decimal`` with 15 fraction digits, a null is ``pd.NA``), text and JSON are Arrow strings (:data:`TEXT`):
exact from the API to the warehouse, and what DuckDB and PostgreSQL ingest without a conversion
(:func:`to_python` reads any column as plain Python values, nulls as ``None``). Missing fields are nulls;
unknown fields land in ``extra`` or ``raw``, so a new Fastly field never breaks a load.
A value that cannot be stored as it is (a number in another format, NaN, more digits than
``DECIMAL(38, 15)``, a date that does not parse, a NUL character, a wrong shape) is a
:class:`~airflow_provider_fastly_billing.exceptions.FastlyDataError` naming the invoice, line and field:
never a NULL, never a rounding. This module imports pandas; DAG files should import it only inside tasks.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import operator
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact, localcontext
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_fastly_billing.exceptions import FastlyDataError
from airflow_provider_fastly_billing.validation import PLAIN_DECIMAL

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

NUMERIC_PRECISION = 38
"""Digits of the warehouses' exact money and quantity columns, ``DECIMAL(38, 15)``."""
NUMERIC_SCALE = 15
"""Fraction digits of those columns: a value with more is refused, never rounded."""
_INTEGER_DIGITS = NUMERIC_PRECISION - NUMERIC_SCALE
_BIGINT = 2**63
_OUT_OF_RANGE = "is out of the warehouse's 64-bit integer range"
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
_SUM = Context(prec=3 * NUMERIC_PRECISION, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
_NUMBER = PLAIN_DECIMAL
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_NUMBER_KINDS = {Decimal, int, type(None)}
_ZERO = Decimal(0)
_PATH_DEPTH = 4
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = _SHOW.maxlong = 80
_LONGEST_INT_BITS = 4000 * 3  # within Python's 4300-digit limit on printing an int
_LONGEST_ID_BITS = 128

KEY = {"load_key": "string", "api_version": "string", "invoice_id": "string", "customer_id": "string"}
TOTAL_NUMERIC = (
    "bandwidth",
    "bandwidth_cost",
    "cost",
    "cost_before_discount",
    "discount",
    "extras_cost",
    "incurred_cost",
    "overage",
    "plan_minimum",
    "requests",
    "requests_cost",
)
TOTAL_STRING = ("bandwidth_units", "plan_code", "plan_name", "terms")
V2_LINE_ITEM = {
    "id": "string",
    "line_number": "int",
    "description": "string",
    "amount": "numeric",
    "units": "numeric",
    "rate_per_unit": "numeric",
    "per_unit_cost": "numeric",
    "plan_name": "string",
    "plan_no": "numeric",
    "service_name": "string",
    "service_no": "numeric",
    "service_type": "string",
    "client_service_id": "string",
    "client_plan_id": "string",
    "usage_type_cd": "string",
    "usage_type_no": "numeric",
    "rate_schedule_no": "numeric",
    "rate_schedule_tier_no": "numeric",
    "credit_coupon_code": "string",
    "aria_invoice_id": "string",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "deleted_at": "timestamp",
}
V2_INVOICE_ITEM = tuple(k for k in V2_LINE_ITEM if k not in ("per_unit_cost", "service_type", "client_plan_id"))
V2_ESTIMATE_ITEM: tuple[str, ...] = (
    "plan_no",
    "description",
    "units",
    "per_unit_cost",
    "service_no",
    "service_type",
    "amount",
)
V2_ESTIMATE_ITEM += ("client_service_id", "client_plan_id")
V3_LINE_ITEM = {
    "rate": "numeric",
    "product_name": "string",
    "product_group": "string",
    "product_line": "string",
    "region": "string",
    "usage_type": "string",
}

SCHEMA: dict[str, dict[str, str]] = {
    "invoices": {
        **KEY,
        "is_estimate": "bool",
        "period_start": "timestamp",
        "period_end": "timestamp",
        "status": "string",
        "sent_at": "timestamp",
        "vendor_state": "string",
        **dict.fromkeys(TOTAL_NUMERIC, "numeric"),
        **dict.fromkeys(TOTAL_STRING, "string"),
        "statement_number": "string",
        "currency_code": "string",
        "invoice_posted_on": "timestamp",
        "fetched_at": "timestamp",
        "raw": "json",
    },
    "line_items": {**KEY, "is_estimate": "bool", **V2_LINE_ITEM, **V3_LINE_ITEM, "extra": "json"},
    "regions": {
        **KEY,
        "region": "string",
        "region_cost": "numeric",
        "metric": "string",
        "metric_total": "numeric",
        "tier": "int",
        "tier_name": "string",
        "units": "numeric",
        "price": "numeric",
        "discounted_price": "numeric",
        "tier_total": "numeric",
    },
    "extras": {**KEY, "name": "string", "recurring": "numeric", "setup": "numeric", "extra": "json"},
}
"""Every table's columns and their kinds: string, numeric (Decimal), int, bool, timestamp, json."""

MONEY = pa.decimal128(NUMERIC_PRECISION, NUMERIC_SCALE)
"""The Arrow type of numeric columns: the warehouses' ``DECIMAL(38, 15)``."""
TEXT = pd.ArrowDtype(pa.string())
"""The dtype of string and JSON columns: Arrow strings, what the engines ingest without a conversion."""
_PANDAS_DTYPE = {"int": "Int64", "bool": "boolean"}
_NUL = "holds a NUL character, which PostgreSQL cannot store"
_SURROGATE = "holds a lone surrogate, which is not valid Unicode"
METRICS = ("bandwidth", "requests", "percentile")


@dataclass(frozen=True)
class InvoiceFrames:
    """The four tables of one or more invoices, ready for :func:`~.warehouse.load_frames`."""

    invoices: pd.DataFrame
    line_items: pd.DataFrame
    regions: pd.DataFrame
    extras: pd.DataFrame

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in SCHEMA}

    @property
    def load_keys(self) -> list[str]:
        """The loads these frames replace in a warehouse."""
        return list(dict.fromkeys(self.invoices["load_key"]))

    @classmethod
    def concat(cls, parts: Sequence[InvoiceFrames]) -> InvoiceFrames:
        """
        All ``parts`` as one set of frames, loaded in one transaction.

        A load in several parts is kept once when its rows are equal (``fetched_at`` aside), and refused
        with a ``FastlyDataError`` naming both parts when they differ.
        """
        if not parts:
            return _frames_of([])
        first: dict[str, int] = {}
        repeated: list[list[str]] = []
        for n, part in enumerate(parts):
            repeated.append([])
            for key in part.load_keys:
                if key not in first:
                    first[key] = n
                elif _same_load(parts[first[key]], part, key):
                    repeated[n].append(key)
                else:
                    raise FastlyDataError(
                        f"{_label_of(part, key)} appears twice with different content: "
                        f"parts #{first[key] + 1} and #{n + 1}"
                    )
        tables = {
            name: pd.concat([_without(p.tables[name], keys) for p, keys in zip(parts, repeated, strict=True)])
            for name in SCHEMA
        }
        return cls(**{name: table.reset_index(drop=True) for name, table in tables.items()})


def _same_load(a: InvoiceFrames, b: InvoiceFrames, load_key: str) -> bool:
    """Whether two frames hold the same rows of a load in every table, ``fetched_at`` aside."""
    pairs = zip(a.tables.values(), b.tables.values(), strict=True)
    return all(_rows(x, load_key).equals(_rows(y, load_key)) for x, y in pairs)


def _rows(table: pd.DataFrame, load_key: str) -> pd.DataFrame:
    return table[table["load_key"] == load_key].drop(columns="fetched_at", errors="ignore").reset_index(drop=True)


def _label_of(frames: InvoiceFrames, load_key: str) -> str:
    row = frames.invoices[frames.invoices["load_key"] == load_key].iloc[0]
    noun = "estimate" if row["is_estimate"] else "invoice"
    return f"{noun} {_name(row['invoice_id'])} (customer {_name(row['customer_id'])})"


def _without(table: pd.DataFrame, load_keys: list[str]) -> pd.DataFrame:
    return table[~table["load_key"].isin(load_keys)] if load_keys else table


class _BadValue(Exception):
    """A value a column cannot take, at ``row`` of the merged table; the caller names where it came from."""

    def __init__(self, row: int, value: Any, problem: str) -> None:
        super().__init__(problem)
        self.row, self.value, self.problem, self.column = row, value, problem, ""


_NONE = type(None)
_KIND_NAMES = {
    Mapping: "an object",
    list: "a list",
    bool: "a boolean",
    str: "a string",
    int: "an integer",
    Decimal: "a number",
    float: "a number",
    _NONE: "null",
}


def _kind(value: Any) -> str:
    """``value``'s JSON kind, for an error."""
    return next((name for kind, name in _KIND_NAMES.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _not(value: Any, what: str) -> str:
    """Why ``value`` is refused where ``what`` belongs."""
    return f"is not {what}" if isinstance(value, str) else f"is {_kind(value)}, expected {what}"


def _first_bad(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``values`` through ``convert``, which raises ``ValueError(problem)`` for a value it refuses."""
    out = []
    for row, value in enumerate(values):
        try:
            out.append(convert(value))
        except ValueError as exc:
            raise _BadValue(row, value, str(exc)) from None
    return out


def _finite(value: Decimal | float) -> bool:
    return value.is_finite() if type(value) is Decimal else math.isfinite(value)


def _number(value: Any) -> Decimal | None:
    kind = type(value)
    if value is None or kind is Decimal:
        return cast("Decimal | None", value)
    if kind is int:
        return Decimal(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        return Decimal(repr(value))
    if kind is str and _NUMBER.fullmatch(value):
        try:
            return Decimal(value)
        except ArithmeticError:
            raise ValueError("has an exponent beyond any decimal number") from None
    raise ValueError(_not(value, "a plain decimal number"))


def _misfit(value: Decimal) -> str | None:
    """Why the warehouse's ``DECIMAL(38, 15)`` cannot hold ``value`` exactly, or None when it can."""
    if not value.is_finite():
        return "is not a finite number"
    if not value:
        return None
    _, digits, finite_exponent = value.normalize(_EXACT).as_tuple()
    exponent = cast("int", finite_exponent)  # a finite value's exponent is an int, never "n", "N" or "F"
    column = f"DECIMAL({NUMERIC_PRECISION}, {NUMERIC_SCALE})"
    if exponent < -NUMERIC_SCALE:
        return f"has {-exponent} fraction digits: the warehouse ({column}) keeps {NUMERIC_SCALE} and would round it"
    if len(digits) + exponent > _INTEGER_DIGITS:
        return f"has {len(digits) + exponent} integer digits: the warehouse ({column}) holds {_INTEGER_DIGITS}"
    return None


def _all_fit(values: list[Decimal | None]) -> bool:
    """
    Whether every value is finite with at most the scale's fraction and the integer digits: one sum.

    An exact sum of the magnitudes has the smallest exponent of all its terms and is at least the largest
    of them, so if it fits, each value does. The sum is computed with a bounded precision (a hostile
    ``1E+999999999`` must not expand to a billion digits): a rounded sum sends each value to be looked at.
    Zeros count: pyarrow crashes on a zero such as ``0E-9999999``.
    """
    present = cast(
        "Iterator[Decimal]", itertools.compress(values, map(operator.is_not, values, itertools.repeat(None)))
    )
    try:
        with localcontext(_SUM) as context:
            total = sum(map(abs, present), Decimal(0))
    except (ArithmeticError, ValueError):
        return False
    exact = not context.flags[Inexact] and total.is_finite()
    return exact and cast("int", total.as_tuple().exponent) >= -NUMERIC_SCALE and total.adjusted() < _INTEGER_DIGITS


def _numbers(values: list[Any]) -> list[Decimal | None]:
    kinds = set(map(type, values))
    if kinds <= {int, _NONE}:
        return _whole_numbers(values)
    if not kinds <= _NUMBER_KINDS:
        numbers = _first_bad(values, _number)
    elif int in kinds:
        numbers = [Decimal(v) if type(v) is int else v for v in values]
    else:
        numbers = values
    if not _all_fit(numbers):
        numbers = [_fitting(row, number, values[row]) for row, number in enumerate(numbers)]
    return numbers


def _fitting(row: int, number: Decimal | None, value: Any) -> Decimal | None:
    """``number`` as the column takes it: a zero as plain 0 (its exponent may be anything), else as it is."""
    if number is None:
        return None
    if not number:
        return _ZERO
    problem = _misfit(number)
    if problem:
        raise _BadValue(row, value, problem)
    return number


def _whole_numbers(values: list[int | None]) -> list[Decimal | None]:
    """Integers as Decimals, each distinct one converted once: ids such as ``service_no`` repeat on many lines."""
    exact = {value: Decimal(value) for value in set(values) if value is not None}
    if exact and max(map(abs, exact)) >= 10**_INTEGER_DIGITS:
        row = next(n for n, v in enumerate(values) if v is not None and abs(v) >= 10**_INTEGER_DIGITS)
        raise _BadValue(row, values[row], cast("str", _misfit(exact[cast("int", values[row])])))
    with_nulls = cast("dict[int | None, Decimal | None]", exact)
    with_nulls[None] = None
    return list(map(with_nulls.__getitem__, values))


def _integer(value: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    if (type(value) is str and _INTEGER.fullmatch(value)) or (type(value) in (Decimal, float) and _finite(value)):
        if not -_BIGINT <= Decimal(value) < _BIGINT:
            raise ValueError(_OUT_OF_RANGE)
        if int(value) == Decimal(value):
            return int(value)
    raise ValueError(_not(value, "an integer"))


def _integers(values: list[Any]) -> list[int | None]:
    if not set(map(type, values)) <= {int, _NONE}:
        values = _first_bad(values, _integer)
    present = list(filter(None, values))
    if present and not (min(present) >= -_BIGINT and max(present) < _BIGINT):
        row = next(n for n, v in enumerate(values) if v is not None and not -_BIGINT <= v < _BIGINT)
        raise _BadValue(row, values[row], _OUT_OF_RANGE)
    return values


def _text(value: Any) -> str | None:
    kind = type(value)
    if value is None or kind is str:
        return cast("str | None", value)
    if kind is int and value.bit_length() > _LONGEST_INT_BITS:
        raise ValueError("is an integer too long to store as text")
    if kind is int or (kind in (Decimal, float) and _finite(value)):
        return str(value)
    raise ValueError(_not(value, "a string"))


def _strings(values: list[Any]) -> list[str | None]:
    if not set(map(type, values)) <= {str, _NONE}:
        values = _first_bad(values, _text)
    text = "".join(filter(None, values))
    if "\x00" in text:
        row = next(n for n, v in enumerate(values) if v and "\x00" in v)
        raise _BadValue(row, values[row], _NUL)
    if not text.isascii() and not _unicode(text):
        row = next(n for n, v in enumerate(values) if v and not _unicode(v))
        raise _BadValue(row, values[row], _SURROGATE)
    return values


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode: JSON's ``\\ud800`` escapes decode to lone surrogates, which are not."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _text_column(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Arrow strings as they are, unless one holds a NUL character."""
    nul = pc.match_substring(values, "\x00")
    if pc.any(nul).as_py():
        row = pc.index(nul, True).as_py()
        raise _BadValue(row, values[row].as_py(), _NUL)
    return values


def _timestamps(values: list[Any]) -> pd.Series:
    if not set(map(type, values)) <= {str, _NONE}:
        values = _first_bad(values, _date_or_text)
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    if parsed.isna().sum() != values.count(None):
        row = next(n for n, (v, p) in enumerate(zip(values, parsed, strict=True)) if v is not None and pd.isna(p))
        raise _BadValue(row, values[row], "is not an ISO 8601 date-time")
    return parsed


def _date_or_text(value: Any) -> Any:
    if value is None or isinstance(value, (str, date)):
        return value
    raise ValueError(_not(value, "an ISO 8601 date-time"))


def _column(values: list[Any] | pa.ChunkedArray, kind: str) -> pd.Series:
    if isinstance(values, pa.ChunkedArray):
        return _arrow_column(values, kind)
    if kind == "numeric":
        return _money_column(values)
    if kind == "timestamp":
        return _timestamps(values)
    if kind in ("string", "json"):
        return _arrow(pa.array(_strings(values) if kind == "string" else values, pa.string()))
    if kind == "int":
        values = _integers(values)
    return pd.Series(values, dtype=_PANDAS_DTYPE[kind])


def _money_column(values: list[Any]) -> pd.Series:
    numbers = _numbers(values)
    try:
        return money(numbers)
    except pa.ArrowInvalid:  # pyarrow refuses a zero with a large exponent (0E+30): it is stored as 0
        return money([_fitting(row, number, values[row]) for row, number in enumerate(numbers)])


def _arrow_column(values: pa.ChunkedArray, kind: str) -> pd.Series:
    """A text column Arrow read from the answer (see :func:`_item_columns`)."""
    return _distinct_timestamps(values) if kind == "timestamp" else _arrow(_text_column(values))


def _distinct_timestamps(values: pa.ChunkedArray) -> pd.Series:
    """ISO 8601 text parsed once per distinct value: the line items of an answer share a few times."""
    encoded = pc.dictionary_encode(values).combine_chunks()
    try:
        parsed = _timestamps(encoded.dictionary.to_pylist())
    except _BadValue as bad:
        bad.row = pc.index(encoded.indices, bad.row).as_py()
        raise
    return pd.Series(parsed.array.take(encoded.indices.fill_null(-1).to_numpy(), allow_fill=True))


def _arrow(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(values), copy=False)


def money(values: Sequence[Decimal | None]) -> pd.Series:
    """Exact numbers as a ``decimal128(38, 15)`` column; each must fit (pyarrow refuses to round)."""
    return _arrow(pa.array(values, type=MONEY))


def to_python(series: pd.Series) -> list[Any]:
    """
    A column's values as Python objects, nulls as ``None``; money as exact ``Decimal``s without the
    column's trailing fraction zeros (``711.74``, not ``711.740000000000000``), so they read as the API sent them.
    """
    if not isinstance(series.dtype, pd.ArrowDtype):
        return cast("list[Any]", series.tolist())
    values: list[Any] = pa.array(series).to_pylist()
    if pa.types.is_decimal(series.dtype.pyarrow_dtype):
        return [None if v is None else _trimmed(v) for v in values]
    return values


def _trimmed(value: Decimal) -> Decimal:
    value = value.normalize(_EXACT)
    return value.quantize(1) if cast("int", value.as_tuple().exponent) > 0 else value


def _table(table: str, columns: Mapping[str, list[Any] | pa.ChunkedArray], length: int) -> pd.DataFrame:
    """A DataFrame with exactly the table's columns and kinds; absent columns are all null."""
    empty = [None] * length
    data = {}
    for name, kind in SCHEMA[table].items():
        values = columns.get(name, empty)
        try:
            data[name] = _arrow(pa.array(values, pa.string())) if name in KEY else _column(values, kind)
        except _BadValue as bad:
            bad.column = name
            raise
    return pd.DataFrame(data, index=pd.RangeIndex(length))


Columns = dict[str, dict[str, list[Any]]]
"""One document's rows, column by column, per table; every non-empty table has a ``load_key`` column."""


@dataclass(frozen=True)
class _Doc:
    """
    One document's rows, column by column per table, and what an error needs to name a place in it.

    The line items' own fields are not in ``tables``: they are read from ``item_rows`` for all documents at
    once (:func:`_item_columns`).
    """

    label: str
    items_path: str
    fields: Mapping[str, str]
    tables: Columns
    item_rows: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    item_fields: tuple[str, ...] = ()
    offset: int = 0
    """How many of the document's line items came before these (in earlier parts)."""


def _frames_of(docs: Sequence[_Doc]) -> InvoiceFrames:
    """One DataFrame per table for all ``docs``: building DataFrames once is what makes many invoices cheap."""
    tables = {}
    for name, columns in SCHEMA.items():
        lengths = [len(doc.tables[name].get("load_key", ())) for doc in docs]
        items = _item_columns(docs) if name == "line_items" else {}
        merged = {**_merged(docs, name, [c for c in columns if c not in items], lengths), **items}
        try:
            tables[name] = _table(name, merged, sum(lengths))
        except _BadValue as bad:
            raise _located(bad, name, docs, lengths) from None
    return InvoiceFrames(**tables)


def _merged(docs: Sequence[_Doc], table: str, columns: list[str], lengths: list[int]) -> dict[str, list[Any]]:
    """The ``columns`` of a table of all ``docs``, one list each; a column a document lacks is null there."""
    if len(docs) == 1:  # one large answer: its columns as they are, not a second copy
        return {column: docs[0].tables[table].get(column) or [None] * lengths[0] for column in columns}
    merged: dict[str, list[Any]] = {column: [] for column in columns}
    for doc, length in zip(docs, lengths, strict=True):
        for column, values in merged.items():
            values.extend(doc.tables[table].get(column) or [None] * length)
    return merged


_BY_ARROW = {"string": pa.string(), "timestamp": pa.string()}
"""The kinds Arrow reads from the answer as it is; it would loop for hours on a Decimal such as ``1E-999999999``
and truncate a fractional integer, so numbers are read, bounded and checked in Python."""
_ARROW_REFUSES = (pa.ArrowException, OverflowError, TypeError, ValueError)


def _item_columns(docs: Sequence[_Doc]) -> dict[str, list[Any] | pa.ChunkedArray]:
    """
    The line items' fields of all ``docs``, in order, column by column.

    Arrow reads the text fields in one pass per run of documents with the same fields, in C, as
    ``pyarrow.Table.from_pylist`` does: that pass is most of the work of a large answer. When Arrow refuses
    a value (a number where text belongs, a wrong shape), those columns are read in Python instead, where
    the checks that name the line and field run.
    """
    names = list({n: None for doc in docs for n in doc.item_fields if n != "line_number"})
    texts = [name for name in names if SCHEMA["line_items"][name] in _BY_ARROW]
    columns: dict[str, list[Any] | pa.ChunkedArray] = {name: _listed(docs, name) for name in names if name not in texts}
    try:
        columns.update(_arrow_item_columns(docs, texts))
    except _ARROW_REFUSES:
        columns.update({name: _listed(docs, name) for name in texts})
    return columns


def _arrow_item_columns(docs: Sequence[_Doc], names: list[str]) -> dict[str, pa.ChunkedArray]:
    chunks: dict[str, list[pa.Array]] = {name: [] for name in names}
    for fields, run in itertools.groupby(docs, key=lambda doc: doc.item_fields):
        rows = [item for doc in run for item in doc.item_rows]
        converted = pa.Table.from_pylist(
            rows, schema=pa.schema([(name, pa.string()) for name in names if name in fields])
        )
        for name in names:
            chunks[name].extend(converted.column(name).chunks if name in fields else [pa.nulls(len(rows), pa.string())])
    return {name: pa.chunked_array(parts, pa.string()) for name, parts in chunks.items()}


def _listed(docs: Sequence[_Doc], name: str) -> list[Any]:
    """A line-item field of all ``docs`` as Python values; null where a document does not have the field."""
    values: list[Any] = []
    for doc in docs:
        values.extend(
            [item.get(name) for item in doc.item_rows] if name in doc.item_fields else [None] * len(doc.item_rows)
        )
    return values


def _located(bad: _BadValue, table: str, docs: Sequence[_Doc], lengths: list[int]) -> FastlyDataError:
    """The error for a refused value, naming its document, line and field."""
    part, row = 0, bad.row
    while row >= lengths[part]:
        row -= lengths[part]
        part += 1
    doc = docs[part]
    where = _WHERE[table](doc, row, bad.column)
    return FastlyDataError(f"{doc.label}: {where}: {_shown(bad.value)} {bad.problem}")


def _field_of_invoice(doc: _Doc, row: int, column: str) -> str:
    return f"field {doc.fields.get(column, column)}"


def _field_of_item(doc: _Doc, row: int, column: str) -> str:
    number = doc.tables["line_items"]["line_number"][row]
    position = doc.offset + row
    line = number if type(number) is int and column != "line_number" else position + 1
    index = "" if line == position + 1 else f" ({doc.items_path}[{position}])"
    return f"line {line} of {doc.items_path}{index}, field {column}"


def _field_of_region(doc: _Doc, row: int, column: str) -> str:
    if column == "region":
        return "field regions (a region's name)"
    region, metric, tier = (doc.tables["regions"][name][row] for name in ("region", "metric", "tier"))
    path = f"regions.{_name(region)}"
    if column == "region_cost":
        return f"field {path}.cost"
    if column == "metric_total":
        return f"field {path}.{metric}.total"
    return f"field {path}.{metric}.tiers[{tier - 1}].{_TIER_FIELDS.get(column, column)}"


def _field_of_extra(doc: _Doc, row: int, column: str) -> str:
    return f"field total.extras[{row}].{column}"


_WHERE = {
    "invoices": _field_of_invoice,
    "line_items": _field_of_item,
    "regions": _field_of_region,
    "extras": _field_of_extra,
}
_TIER_FIELDS = {"tier_name": "name", "tier_total": "total"}


def _shown(value: Any) -> str:
    """``value`` for an error: its repr, cut to about 80 characters (an integer too long to print, its size)."""
    if type(value) is int and value.bit_length() > _LONGEST_INT_BITS:
        return f"an integer of {math.floor(value.bit_length() * math.log10(2)) + 1} digits or so"
    return _SHOW.repr(value)


def _name(value: Any) -> str:
    """``value`` as it reads in an error: plain when it is a short printable id, else its truncated repr."""
    text = value if type(value) is str else str(value) if type(value) is int and value.bit_length() < 256 else ""
    return text if text and text.isprintable() and len(text) <= _SHOW.maxstring else _shown(value)


def _expect(value: Any, what: str, label: str, path: str, *, null: bool = True) -> Any:
    """``value`` if it has the shape ``what`` ("an object" or "a list") or is null; else a FastlyDataError."""
    if (value is None and null) or isinstance(value, _SHAPES[what]):
        return value
    raise FastlyDataError(f"{label}: {path} is {_kind(value)}, expected {what}")


_SHAPES: dict[str, type | tuple[type, ...]] = {"an object": Mapping, "a list": (list, tuple)}


def _objects(value: Any, label: str, path: str) -> list[Mapping[str, Any]]:
    """The list of objects at ``path`` (null: none); anything else there is a FastlyDataError."""
    items = list(_expect(value, "a list", label, path) or ())
    if not set(map(type, items)) <= {dict}:
        for n, item in enumerate(items):
            _expect(item, "an object", label, f"{path}[{n}]", null=False)
    return items


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"), allow_nan=False)


def _stored_json(value: Any, label: str, path: str) -> str:
    """``value`` as JSON text; too deep a nesting, NaN or Infinity is a FastlyDataError naming where."""
    try:
        return _json(value)
    except RecursionError:
        problem = "is nested too deeply to store as JSON"
    except (TypeError, ValueError) as exc:
        problem = f"cannot be stored as JSON ({exc})"
    raise FastlyDataError(f"{label}: {_unstorable(value, path)} {problem}")


def _unstorable(value: Any, path: str) -> str:
    """The path, a few levels deep at most, of the part of ``value`` that JSON cannot store."""
    for _ in range(_PATH_DEPTH):
        children = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            try:
                _json(child)
            except (RecursionError, TypeError, ValueError):
                path = f"{path}[{key}]" if isinstance(value, list) else f"{path}.{key}" if path else str(key)
                value = child
                break
        else:
            break
    return path


def _unknown(
    items: list[Mapping[str, Any]], known: frozenset[str], label: str, path: str, offset: int = 0
) -> list[str | None]:
    try:
        return [None if known.issuperset(item) else _json(_rest(item, known)) for item in items]
    except (RecursionError, TypeError, ValueError):
        return [
            None if known.issuperset(item) else _stored_json(_rest(item, known), label, f"{path}[{n}]")
            for n, item in enumerate(items, start=offset)
        ]


def _rest(item: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in known}


def _with_key(key: Mapping[str, Any], n: int, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {**{name: [value] * n for name, value in key.items()}, **columns}


def _line_items(
    key: Mapping[str, Any], items: list[Mapping[str, Any]], fields: Sequence[str], label: str, path: str, offset: int
) -> dict[str, list[Any]]:
    """
    The line items' key, line number and unknown fields; their own fields come from :func:`_item_columns`.

    :param offset: how many line items of the document came before ``items``.
    """
    numbers = (
        [item.get("line_number") for item in items]
        if "line_number" in fields
        else range(offset + 1, offset + len(items) + 1)
    )
    columns: dict[str, list[Any]] = {
        "line_number": list(numbers),
        "extra": _unknown(items, frozenset(fields), label, path, offset),
    }
    return _with_key(key, len(items), columns)


def _regions(key: Mapping[str, Any], regions: Any, label: str) -> dict[str, list[Any]]:
    rows: list[tuple[Any, ...]] = []
    for region, value in (_expect(regions, "an object", label, "regions") or {}).items():
        path = f"regions.{_name(region)}"
        data = _expect(value, "an object", label, path) or {}
        metrics = [(m, _expect(data[m], "an object", label, f"{path}.{m}")) for m in METRICS if data.get(m) is not None]
        if not metrics:
            rows.append((region, data.get("cost"), None, None, None, None, None, None, None, None))
        for metric, body in metrics:
            tiers = _objects(body.get("tiers"), label, f"{path}.{metric}.tiers") or [{}]
            for n, tier in enumerate(tiers, start=1):
                rows.append(
                    (
                        region,
                        data.get("cost"),
                        metric,
                        body.get("total"),
                        n if tier else None,
                        tier.get("name"),
                        tier.get("units"),
                        tier.get("price"),
                        tier.get("discounted_price"),
                        tier.get("total"),
                    )
                )
    names: tuple[str, ...] = ("region", "region_cost", "metric", "metric_total", "tier", "tier_name", "units", "price")
    names += ("discounted_price", "tier_total")
    return _with_key(key, len(rows), {name: [row[i] for row in rows] for i, name in enumerate(names)})


def _extras(key: Mapping[str, Any], extras: list[Mapping[str, Any]], label: str) -> dict[str, list[Any]]:
    known = frozenset(("name", "recurring", "setup"))
    columns = {name: [extra.get(name) for extra in extras] for name in known}
    columns["extra"] = _unknown(extras, known, label, "total.extras")
    return _with_key(key, len(extras), columns)


def _timestamp(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).isoformat()


def _label(doc: Mapping[str, Any], noun: str) -> str:
    """How errors name a document: ``invoice 123 (customer abc)``."""
    invoice_id = doc.get("invoice_id")
    number = "" if invoice_id is None else f" {_name(invoice_id)}"
    return f"{noun}{number} (customer {_name(doc.get('customer_id'))})"


def _check_ids(doc: Mapping[str, Any], label: str) -> None:
    """Refuse ids that cannot make a load key: not a string (or, for invoice_id, an integer), or with a NUL."""
    for field, kinds in (("invoice_id", (str, int)), ("customer_id", (str,))):
        value = doc.get(field)
        if value is None:
            continue
        if type(value) not in kinds:
            raise FastlyDataError(f"{label}: field {field}: {_shown(value)} {_not(value, 'an id')}")
        if type(value) is int and value.bit_length() > _LONGEST_ID_BITS:
            raise FastlyDataError(f"{label}: field {field}: {_shown(value)} is too long for an id")
        if isinstance(value, str) and "\x00" in value:
            raise FastlyDataError(f"{label}: field {field}: {_shown(value)} holds a NUL character")
        if isinstance(value, str) and not _unicode(value):
            raise FastlyDataError(f"{label}: field {field}: {_shown(value)} {_SURROGATE}")


def _key(doc: Mapping[str, Any], version: str, load_key: str) -> dict[str, Any]:
    """The columns every table of a document starts with."""
    invoice_id = doc.get("invoice_id")
    return {
        "load_key": load_key,
        "api_version": version,
        "invoice_id": None if invoice_id is None else str(invoice_id),
        "customer_id": doc.get("customer_id"),
    }


_V2_FIELDS = {
    "period_start": "start_time",
    "period_end": "end_time",
    "status": "status.status",
    "sent_at": "status.sent_at",
    **{name: f"total.{name}" for name in (*TOTAL_NUMERIC, *TOTAL_STRING)},
}
_V3_FIELDS = {
    "period_start": "billing_start_date",
    "period_end": "billing_end_date",
    "cost": "monthly_transaction_amount",
}


def _v2(doc: Mapping[str, Any], is_estimate: bool, fetched_at: str, load_key: str, label: str, offset: int) -> _Doc:
    total = _expect(doc.get("total"), "an object", label, "total") or {}
    status = doc.get("status")
    status = {"status": status} if isinstance(status, str) else _expect(status, "an object", label, "status") or {}
    key = _key(doc, "v2", load_key)
    invoice = {
        **key,
        "is_estimate": is_estimate,
        "period_start": doc.get("start_time"),
        "period_end": doc.get("end_time"),
        "status": status.get("status"),
        "sent_at": status.get("sent_at"),
        "vendor_state": doc.get("vendor_state"),
        **{name: total.get(name) for name in (*TOTAL_NUMERIC, *TOTAL_STRING)},
        "fetched_at": fetched_at,
        "raw": _stored_json({k: v for k, v in doc.items() if k != "line_items"}, label, ""),
    }
    items = _objects(doc.get("line_items"), label, "line_items")
    fields = V2_ESTIMATE_ITEM if is_estimate else V2_INVOICE_ITEM
    tables = {
        "invoices": {name: [value] for name, value in invoice.items()},
        "line_items": _line_items({**key, "is_estimate": is_estimate}, items, fields, label, "line_items", offset),
        "regions": _regions(key, doc.get("regions"), label),
        "extras": _extras(key, _objects(total.get("extras"), label, "total.extras"), label),
    }
    return _Doc(label, "line_items", _V2_FIELDS, tables, items, fields, offset)


def _v3(doc: Mapping[str, Any], is_estimate: bool, fetched_at: str, load_key: str, label: str, offset: int) -> _Doc:
    key = _key(doc, "v3", load_key)
    invoice = {
        **key,
        "is_estimate": is_estimate,
        "period_start": doc.get("billing_start_date"),
        "period_end": doc.get("billing_end_date"),
        "status": "MTD" if is_estimate else None,
        "cost": doc.get("monthly_transaction_amount"),
        "statement_number": doc.get("statement_number"),
        "currency_code": doc.get("currency_code"),
        "invoice_posted_on": doc.get("invoice_posted_on"),
        "fetched_at": fetched_at,
        "raw": _stored_json({k: v for k, v in doc.items() if k != "transaction_line_items"}, label, ""),
    }
    path = "transaction_line_items"
    items = _objects(doc.get(path), label, path)
    fields = ("description", "amount", "units", "credit_coupon_code", *V3_LINE_ITEM)
    tables = {
        "invoices": {name: [value] for name, value in invoice.items()},
        "line_items": _line_items({**key, "is_estimate": is_estimate}, items, fields, label, path, offset),
        "regions": {},
        "extras": {},
    }
    return _Doc(label, path, _V3_FIELDS, tables, items, fields, offset)


def is_v3(doc: Mapping[str, Any]) -> bool:
    """Whether a document is a Billing v3 invoice or month-to-date invoice."""
    return "transaction_line_items" in doc or "billing_start_date" in doc or "monthly_transaction_amount" in doc


def _period_of(doc: Mapping[str, Any]) -> str:
    """The estimate's month for its load key; a start that does not parse is refused later, naming the field."""
    start = doc.get("billing_start_date") or doc.get("start_time")
    parsed = pd.to_datetime(start, utc=True, errors="coerce", format="ISO8601") if isinstance(start, str) else None
    return "unknown" if parsed is None or pd.isna(parsed) else parsed.strftime("%Y-%m")


def _invoice_key(invoice: Mapping[str, Any]) -> str:
    return f"{'v3' if is_v3(invoice) else 'v2'}/invoice/{invoice.get('customer_id')}/{invoice.get('invoice_id')}"


def _documents(
    docs: Iterable[Any], noun: str, load_key: Callable[[Mapping[str, Any]], str]
) -> list[tuple[Mapping[str, Any], str, str]]:
    """
    Each document once, with its load key and its name for errors.

    The same load twice is kept once when both copies are equal (an invoice listed twice, or on two pages),
    and refused when they differ: which one is right cannot be told.
    """
    seen: dict[str, tuple[int, Mapping[str, Any], str]] = {}
    for n, doc in enumerate(docs, start=1):
        if not isinstance(doc, Mapping):
            raise FastlyDataError(f"input #{n} is {_kind(doc)}, expected an {noun} object")
        label = _label(doc, noun)
        _check_ids(doc, label)
        key = load_key(doc)
        if key not in seen:
            seen[key] = (n, doc, label)
            continue
        try:
            same = seen[key][1] == doc
        except RecursionError:
            raise FastlyDataError(f"{label}: nested too deeply to compare with its copy (input #{n})") from None
        if not same:
            raise FastlyDataError(f"{label} appears twice with different content: inputs #{seen[key][0]} and #{n}")
    return [(doc, key, label) for key, (_, doc, label) in seen.items()]


def _doc(doc: Mapping[str, Any], key: str, label: str, is_estimate: bool, stamp: str, offset: int = 0) -> _Doc:
    return (_v3 if is_v3(doc) else _v2)(doc, is_estimate, stamp, key, label, offset)


def invoices_to_frames(invoices: Iterable[Mapping[str, Any]], fetched_at: datetime | None = None) -> InvoiceFrames:
    """
    The tables of any number of invoices, v2 (``BillingResponse``) or v3 (``Invoice``), mixed or not.

    :param invoices: the invoices as the hook returned them; the same invoice twice is loaded once if both
        copies are equal, and refused if they differ.
    :param fetched_at: when they were fetched; default now. Re-loading an invoice replaces it.
    :raises FastlyDataError: a value cannot be stored exactly; the message names invoice, line and field.
    """
    stamp = _timestamp(fetched_at or datetime.now(timezone.utc))
    docs = _documents(invoices, "invoice", _invoice_key)
    return _frames_of([_doc(doc, key, label, False, stamp) for doc, key, label in docs])


def invoice_to_frames(invoice: Mapping[str, Any], fetched_at: datetime | None = None) -> InvoiceFrames:
    """The tables of one invoice; see :func:`invoices_to_frames`."""
    return invoices_to_frames([invoice], fetched_at)


def invoice_parts_to_frames(parts: Iterable[Mapping[str, Any]], fetched_at: datetime | None = None) -> InvoiceFrames:
    """
    The tables of one invoice given in parts, each the invoice with a run of its line items, in order.

    What :meth:`~airflow_provider_fastly_billing.hooks.billing.BillingHook.get_invoice_parts` yields: each
    part becomes columns and is dropped before the next is read, so a large invoice's line items are never
    all alive as dicts. The frames are those of :func:`invoice_to_frames` of the whole invoice; the
    invoice's other fields are read from its first part.

    :raises FastlyDataError: as :func:`invoices_to_frames`, naming the line by its place in the whole
        invoice; or a part of another invoice.
    """
    stamp = _timestamp(fetched_at or datetime.now(timezone.utc))
    parts = iter(parts)
    head, key, label = _first_part(next(parts, None), stamp)
    line_items, offset = [head.line_items], len(head.line_items)
    for part in parts:
        if not isinstance(part, Mapping) or _invoice_key(part) != key:
            raise FastlyDataError(f"{label}: a part is not of this invoice")
        line_items.append(_frames_of([_doc(part, key, label, False, stamp, offset)]).line_items)
        offset += len(line_items[-1])
        del part  # before the next part is decoded, not after
    return dataclasses.replace(head, line_items=pd.concat(line_items, ignore_index=True))


def _first_part(part: Mapping[str, Any] | None, stamp: str) -> tuple[InvoiceFrames, str, str]:
    """The frames of an invoice's first part, its load key and its name for errors."""
    if part is None:
        raise FastlyDataError("an invoice in parts has no parts")
    ((doc, key, label),) = _documents([part], "invoice", _invoice_key)
    return _frames_of([_doc(doc, key, label, False, stamp)]), key, label


def estimates_to_frames(
    estimates: Iterable[Mapping[str, Any]], fetched_at: datetime, snapshot_date: date | None = None
) -> InvoiceFrames:
    """
    The tables of month-to-date estimates, v2 or v3, each as one snapshot.

    :param estimates: the estimates as the hook returned them; the same snapshot twice is loaded once if
        both copies are equal, and refused if they differ.
    :param fetched_at: when they were fetched.
    :param snapshot_date: the day the snapshots stand for (default ``fetched_at``'s); loading a snapshot
        of the same day again replaces it, other days' snapshots stay.
    :raises FastlyDataError: a value cannot be stored exactly; the message names estimate, line and field.
    """
    day = (snapshot_date or fetched_at).strftime("%Y-%m-%d")
    stamp = _timestamp(fetched_at)

    def load_key(estimate: Mapping[str, Any]) -> str:
        version = "v3" if is_v3(estimate) else "v2"
        return f"{version}/estimate/{estimate.get('customer_id')}/{_period_of(estimate)}/{day}"

    docs = _documents(estimates, "estimate", load_key)
    return _frames_of([_doc(doc, key, label, True, stamp) for doc, key, label in docs])


def estimate_to_frames(
    estimate: Mapping[str, Any], fetched_at: datetime, snapshot_date: date | None = None
) -> InvoiceFrames:
    """The tables of one month-to-date estimate; see :func:`estimates_to_frames`."""
    return estimates_to_frames([estimate], fetched_at, snapshot_date)
