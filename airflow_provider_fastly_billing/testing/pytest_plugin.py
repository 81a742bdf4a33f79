"""pytest fixtures for users' own DAG tests: ``fastly_simulator`` and ``fastly_connection``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_fastly_billing.testing.simulator import FastlySimulator

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def fastly_simulator() -> Iterator[FastlySimulator]:
    """A running simulator, stopped after the test."""
    with FastlySimulator() as sim:
        yield sim


@pytest.fixture
def fastly_connection(fastly_simulator: FastlySimulator, monkeypatch: pytest.MonkeyPatch) -> FastlySimulator:
    """The simulator, set as the ``fastly_default`` connection through ``AIRFLOW_CONN_FASTLY_DEFAULT``."""
    monkeypatch.setenv("AIRFLOW_CONN_FASTLY_DEFAULT", json.dumps(fastly_simulator.connection()))
    return fastly_simulator
