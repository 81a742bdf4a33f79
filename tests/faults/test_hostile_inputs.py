"""Hostile inputs at every entry point are refused before any request reaches Fastly."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.operators.transfer import InvoiceToSqlOperator
from tests.dagrun import run_dag

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator

HOSTILE_IDS = [
    "../../tokens/self",
    "%2e%2e%2f",
    "abc/def",
    "abc%2Fdef",
    "",
    " ",
    "\uff41\uff42\uff43",
    "a\u0000b",
    "x" * 65,
    None,
]
HOSTILE_NUMBERS = ["-1", "1e9", "99999999999999999999999", "٣", "0x10", "1.5", "", None]


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def test_operators_and_sensor_refuse_hostile_templated_values(fastly: FastlySimulator, capfd) -> None:
    """Every value arrives through templating (params), as a user's DAG would pass it."""
    tasks = []
    for n in range(len(HOSTILE_IDS)):
        value = f"'{{{{ params.ids[{n}] }}}}'"
        tasks.append(f"GetInvoiceByIdOperator(task_id='by_id_{n}', customer_id={value}, invoice_id=1)")
        tasks.append(f"InvoiceMtdSensor(task_id='sensor_{n}', customer_id={value}, poke_interval=0.01)")
    for n in range(len(HOSTILE_NUMBERS)):
        value = f"'{{{{ params.numbers[{n}] }}}}'"
        tasks.append(f"GetInvoiceOperator(task_id='period_{n}', year=2025, month={value})")
        tasks.append(f"GetInvoiceByIdOperator(task_id='invoice_{n}', customer_id='abcdefgh', invoice_id={value})")
    params = {"ids": HOSTILE_IDS, "numbers": HOSTILE_NUMBERS}
    run = run_dag(
        "hostile_templated",
        f"""
        from airflow_provider_fastly_billing.operators.billing import GetInvoiceByIdOperator, GetInvoiceOperator
        from airflow_provider_fastly_billing.sensors.billing import InvoiceMtdSensor
        with DAG(DAG_ID, schedule=None, start_date=START, params={params!r}) as dag:
            {"; ".join(tasks)}
        """,
    )
    out = capfd.readouterr().out
    assert run.state == "failed"
    assert set(run.states.values()) == {"failed"}, run.states
    assert fastly.requests == []
    assert "customer_id must be 1 to 64 letters and digits" in out and "invoice_id must be a non-negative" in out
    assert "month" in out and "is not" in out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customer_id": "../x"},
        {"customer_id": "abc", "year": "2025"},
        {"customer_id": "abc", "year": -5, "month": 1},
        {"customer_id": "abc", "year": 2025, "month": 10**100},
        {"customer_id": None},
        {"customer_id": "abc", "api_version": "v9"},
    ],
)
def test_trigger_kwargs_are_refused_before_any_request(fastly: FastlySimulator, kwargs: dict) -> None:
    import asyncio

    from airflow_provider_fastly_billing.triggers.billing import InvoiceMtdTrigger

    async def first() -> dict:
        async for event in InvoiceMtdTrigger(**kwargs, end_time=time.time() + 5, poll_interval=0.01).run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(first())
    assert event["status"] == "error"
    assert fastly.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"invoices": [["abc", "1 OR 1=1"]]},
        {"invoices": [["abc"]]},
        {"estimate_for": ["abc", "../../x"]},
        {"year": 2025, "month": 1, "schema": "public; DROP TABLE x"},
        {"year": 2025, "month": 1, "table_prefix": 't"x'},
        {"year": "2025", "month": "-1"},
        {"year": 2025, "month": 1, "api_version": "v1"},
    ],
)
def test_transfer_refuses_hostile_arguments(fastly: FastlySimulator, kwargs: dict) -> None:
    operator = InvoiceToSqlOperator(task_id="t", **kwargs)
    with pytest.raises(ValueError):
        operator.execute({})
    assert fastly.requests == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "port must be 0 to 65535"),
        (["--port", "-1"], "port must be 0 to 65535"),
        (["--port", "8o8o"], "invalid"),
        (["--latency", "-3"], "expected 0 to 3600"),
        (["--latency", "nan"], "expected 0 to 3600"),
        (["--customers", "0"], "invalid choice"),
        (["--customers", "100000000"], "invalid choice"),
        (["--token", "bad\ntoken"], "printable ASCII"),
        (["--token", ""], "printable ASCII"),
    ],
)
def test_simulator_cli_refuses_hostile_arguments(argv: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_fastly_billing.testing", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_simulator_cli_serves_and_prints_its_connection() -> None:
    import json

    import requests

    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_fastly_billing.testing", "--port", "0", "--customers", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        answer = requests.get(
            f"{info['url']}/billing/v2/year/2025/month/01", headers={"Fastly-Key": info["connection"]["password"]}
        )
        assert answer.status_code == 200 and answer.json()["customer_id"] == info["customer_ids"][0]
    finally:
        process.terminate()
        process.wait(timeout=10)
