"""Test setup: an Airflow home inside the repo per pytest worker, migrated once; simulator fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

ROOT = Path(__file__).resolve().parent.parent
_HOME = ROOT / ".airflow" / f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ.pop("FASTLY_API_TOKEN", None)

if not (_HOME / "airflow.db").exists():
    (_HOME / "dags").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

if TYPE_CHECKING:
    from airflow_provider_fastly_billing.testing import FastlySimulator


@pytest.fixture
def sim(fastly_simulator: FastlySimulator) -> FastlySimulator:
    """A running simulator (the provider's own pytest fixture)."""
    return fastly_simulator


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch):
    """Set an Airflow connection from a dict, through ``AIRFLOW_CONN_<ID>``."""

    def set_connection(conn_id: str, conn: dict) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return set_connection
