"""How API data crosses XCom: JSON with money as exact decimal strings (Airflow's serde makes floats)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def _exact(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json_bytes(data: Any) -> bytes:
    """``data`` as JSON text, every ``Decimal`` as a string with its exact digits."""
    return json.dumps(data, default=_exact).encode()


def jsonable(data: Any) -> Any:
    """``data`` with every ``Decimal`` turned into an exact string, ready for XCom."""
    return json.loads(to_json_bytes(data))
