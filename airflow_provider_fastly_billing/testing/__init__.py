"""A local Fastly billing simulator for demos and tests: ``with FastlySimulator() as sim: sim.url``."""

from airflow_provider_fastly_billing.testing.simulator import (
    DEFAULT_TOKEN,
    NO_BILLING_TOKEN,
    FastlySimulator,
    Fault,
    RecordedRequest,
)

__all__ = ["DEFAULT_TOKEN", "NO_BILLING_TOKEN", "FastlySimulator", "Fault", "RecordedRequest"]
