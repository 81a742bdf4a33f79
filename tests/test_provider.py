"""Registration: Airflow's providers manager and CLI see the provider, its hook and its connection form."""

from __future__ import annotations

import json
import subprocess
import sys

from airflow_provider_fastly_billing import get_provider_info


def airflow_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], check=True, capture_output=True, text=True, timeout=120
    )
    return done.stdout


def test_providers_list_shows_the_provider() -> None:
    rows = json.loads(airflow_cli("providers", "list", "--output", "json"))
    ours = [r for r in rows if r["package_name"] == "airflow-provider-fastly-billing"]
    assert ours and ours[0]["version"] == get_provider_info()["versions"][0]


def test_providers_hooks_shows_the_fastly_connection_type() -> None:
    rows = json.loads(airflow_cli("providers", "hooks", "--output", "json"))
    ours = [r for r in rows if r["connection_type"] == "fastly"]
    assert ours[0]["class"] == "airflow_provider_fastly_billing.hooks.billing.BillingHook"
    assert ours[0]["package_name"] == "airflow-provider-fastly-billing"


def test_providers_behaviours_relabel_the_token_field() -> None:
    rows = json.loads(airflow_cli("providers", "behaviours", "--output", "json"))
    assert {"field_behaviours": "fastly"} in rows
    from airflow.providers_manager import ProvidersManager

    behaviour = ProvidersManager().field_behaviours["fastly"]
    assert behaviour["relabeling"] == {"password": "API token", "host": "API base URL"}
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port"}


def test_every_module_listed_in_provider_info_imports() -> None:
    import importlib

    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
