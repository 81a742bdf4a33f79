"""InvoiceMtdSensor in real DAG runs: poke, reschedule and deferrable modes, errors and timeouts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.dagrun import run_dag

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator

SENSOR_DAG = """
from airflow_provider_fastly_billing.sensors.billing import InvoiceMtdSensor
with DAG(DAG_ID, schedule=None, start_date=START) as dag:
    InvoiceMtdSensor(
        task_id="estimate", customer_id="{customer}", year={year}, month={month},
        poke_interval=0.05, timeout={timeout}, mode="{mode}", deferrable={deferrable},
    )
"""
MODES = [("poke", False), ("reschedule", False), ("poke", True)]


@pytest.fixture
def fastly(sim: FastlySimulator, connect) -> FastlySimulator:
    connect("fastly_default", sim.connection())
    return sim


def sensor_dag(customer: str, mode: str, deferrable: bool, timeout: float = 30, year=None, month=None) -> str:
    return SENSOR_DAG.format(
        customer=customer, mode=mode, deferrable=deferrable, timeout=timeout, year=year, month=month
    )


@pytest.mark.parametrize(("mode", "deferrable"), MODES)
def test_sensor_returns_the_estimate_after_202s(fastly: FastlySimulator, mode: str, deferrable: bool) -> None:
    fastly.mtd_pending = 3
    customer = fastly.customers[1]
    run = run_dag(f"sensor_{mode}_{deferrable}", sensor_dag(customer, mode, deferrable, year=2025, month=4))
    assert run.state == "success"
    estimate = run.xcom["estimate"]
    assert estimate["customer_id"] == customer
    assert estimate["start_time"] == "2025-04-01T00:00:00Z"
    assert isinstance(estimate["total"]["cost"], str)
    requests = fastly.billing_requests()
    assert len(requests) == 4
    assert all(r.query == {"year": "2025", "month": "04"} for r in requests)


@pytest.mark.parametrize(("mode", "deferrable"), MODES)
def test_sensor_fails_at_once_when_there_can_be_no_estimate(
    fastly: FastlySimulator, mode: str, deferrable: bool, capfd
) -> None:
    customer = fastly.customers[2]
    fastly.no_estimate_customers.add(customer)
    run = run_dag(f"sensor_error_{mode}_{deferrable}", sensor_dag(customer, mode, deferrable, timeout=600))
    assert run.state == "failed"
    assert "422" in (out := capfd.readouterr().out)
    assert "Month-to-date estimate unavailable (parent-pay account)" in out
    assert len(fastly.billing_requests()) == 1


@pytest.mark.parametrize(("mode", "deferrable"), MODES)
def test_sensor_times_out(fastly: FastlySimulator, mode: str, deferrable: bool, capfd) -> None:
    fastly.mtd_pending = 10_000
    run = run_dag(f"sensor_timeout_{mode}_{deferrable}", sensor_dag(fastly.customer_id, mode, deferrable, 0.3))
    assert run.state == "failed"
    out = capfd.readouterr().out
    assert "AirflowSensorTimeout" in out
    assert len(fastly.billing_requests()) >= 2
