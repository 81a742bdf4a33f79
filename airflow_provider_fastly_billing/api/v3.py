"""
Billing v3, the current generation: invoice paths, the month-to-date path, and the bounded cursor walk.

The walk is generic over where a page keeps its items and its ``meta``, so every cursor-paged v3 list
(invoices, service usage) follows ``meta.next_cursor`` with the same bounds.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_provider_fastly_billing import validation
from airflow_provider_fastly_billing.api.transport import path_with_query
from airflow_provider_fastly_billing.exceptions import FastlyApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import date

INVOICES_PATH = "/billing/v3/invoices"
MTD_PATH = "/billing/v3/invoices/month-to-date"
MAX_PAGE_SIZE = 200
PAGE_MARGIN = 2
"""Pages allowed beyond what the answer's own ``meta.total`` and ``meta.limit`` announce."""
MAX_PAGES = 10_000
"""Pages allowed when the answer announces no total: 2 million invoices at the largest page size."""


def invoice_path(invoice_id: int | str) -> str:
    """Path of one v3 invoice."""
    return f"{INVOICES_PATH}/{validation.invoice_id(invoice_id)}"


def list_params(start: date | str | None, end: date | str | None, page_size: int) -> dict[str, str]:
    """The query of an invoice list, validated: billing start dates in ``[start, end]``, a page size."""
    params = {
        name: value
        for name, value in (
            ("billing_start_date", validation.iso_date(start, "start")),
            ("billing_end_date", validation.iso_date(end, "end")),
        )
        if value
    }
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    return {**params, "limit": str(page_size)}


def exact_v3_amount(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """
    A v3 invoice with ``monthly_transaction_amount`` as ``Decimal``: Fastly sends it as a string at times.

    Only a plain decimal string is converted; anything else (``"NaN"``, ``" 12 "``, ``"1_000"``) stays the
    string it was, for the frames to refuse with the invoice named, never a number it does not say.
    """
    amount = document.get("monthly_transaction_amount") if isinstance(document, dict) else None
    if isinstance(amount, str) and validation.PLAIN_DECIMAL.fullmatch(amount):
        document["monthly_transaction_amount"] = Decimal(amount)  # type: ignore[index]
    return document


def invoice_items(page: Mapping[str, Any]) -> Any:
    """The items of an invoice list page: its ``data``."""
    data = page.get("data")
    return [] if data is None else data


def page_meta(page: Mapping[str, Any]) -> Any:
    """The paging ``meta`` of a list page: its top-level ``meta``."""
    return page.get("meta")


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def pages_allowed(meta: Mapping[str, Any]) -> int:
    """How many pages a list may have: its own ``total`` over ``limit`` plus a margin, else :data:`MAX_PAGES`."""
    total, limit = _count(meta.get("total")), _count(meta.get("limit"))
    if total is None or not limit:
        return MAX_PAGES
    return min(math.ceil(total / limit) + PAGE_MARGIN, MAX_PAGES)


def walk(
    fetch: Callable[[Mapping[str, str]], Mapping[str, Any]],
    path: str,
    params: Mapping[str, str],
    items: Callable[[Mapping[str, Any]], Any] = invoice_items,
    secret: str | None = None,
    meta: Callable[[Mapping[str, Any]], Any] = page_meta,
) -> Iterator[Any]:
    """
    Every item of every page of a cursor-paged v3 list, following ``meta.next_cursor`` within bounds.

    A page that is not an object or whose items are not a list, a page with no items but a next cursor,
    a cursor sent twice, or more pages than the answer's own ``meta.total`` and ``meta.limit`` allow
    (plus :data:`PAGE_MARGIN`) is a :class:`FastlyApiError` naming the cursor and the page count.

    :param fetch: GET ``path`` with a query, returning the page's JSON object.
    :param path: the list's path, for errors.
    :param params: the query of the first page; later pages add ``cursor``.
    :param items: the page's list of items (default: its ``data``).
    :param secret: masked in error texts (the token, should the API put it in a cursor).
    :param meta: the page's paging ``meta`` (default: its top-level ``meta``; service usage keeps it in ``data``).
    """
    followed: set[str] = set()
    query: Mapping[str, str] = params
    allowed = MAX_PAGES
    for page_count in itertools.count(1):
        where = path_with_query(path, query)
        page = fetch(query)
        found = items(page) if isinstance(page, dict) else None
        if not isinstance(found, list):
            raise FastlyApiError(200, where, f"page {page_count} holds no list of items", secret=secret)
        yield from found
        paging = meta(page)
        paging = paging if isinstance(paging, dict) else {}
        cursor = str(paging.get("next_cursor") or "")
        if not cursor:
            return
        allowed = min(allowed, pages_allowed(paging))
        if not found:
            problem = "is empty but names a next cursor"
        elif cursor in followed:
            problem = "names a cursor sent before (a paging loop)"
        elif page_count >= allowed:
            problem = (
                f"names a next cursor, beyond the {allowed} pages that meta.total={paging.get('total')!r} "
                f"and meta.limit={paging.get('limit')!r} allow"
            )
        else:
            followed.add(cursor)
            query = {**params, "cursor": cursor}
            continue
        raise FastlyApiError(200, where, f"page {page_count} {problem}: cursor {cursor!r}", secret=secret)
