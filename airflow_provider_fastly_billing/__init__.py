"""Apache Airflow provider for Fastly billing: invoices and month-to-date estimates into a warehouse."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

INTEGRATION = "Fastly Billing"
_PACKAGE = "airflow_provider_fastly_billing"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager (``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-fastly-billing",
        "name": "Fastly Billing",
        "description": "Fastly billing invoices and month-to-date estimates: hook, operators, sensor, "
        "trigger, and loads into any SQL warehouse.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.fastly.com/documentation/reference/api/account/billing/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{_PACKAGE}.hooks.billing"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{_PACKAGE}.operators.billing",
                    f"{_PACKAGE}.operators.transfer",
                    f"{_PACKAGE}.operators.focus",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{_PACKAGE}.sensors.billing"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [f"{_PACKAGE}.triggers.billing"]}],
        "asset-uris": [{"schemes": ["duckdb", "sqlite"], "handler": f"{_PACKAGE}.assets.sanitize_uri"}],
        "connection-types": [
            {
                "connection-type": "fastly",
                "hook-class-name": f"{_PACKAGE}.hooks.billing.BillingHook",
                "hook-name": "Fastly",
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "deadline": {
                        "label": "Deadline per attempt (s), default 4 x timeout",
                        "schema": {"type": ["number", "null"]},
                    },
                    "max_body_bytes": {
                        "label": "Max JSON answer (bytes)",
                        "schema": {"type": ["integer", "null"], "default": 67108864, "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
                    },
                    "max_wait": {
                        "label": "Max wait between retries (s)",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "allow_insecure_http": {
                        "label": "Allow plain http to a non-loopback host",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"password": "API token", "host": "API base URL"},
                    "placeholders": {"host": "https://api.fastly.com"},
                },
            }
        ],
    }
