"""Run the simulator from the command line: ``python -m airflow_provider_fastly_billing.testing``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading

from airflow_provider_fastly_billing.testing.simulator import DEFAULT_TOKEN, FastlySimulator


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0 to 65535, got {value}")
    return port


def _non_negative(value: str) -> float:
    number = float(value)
    if not 0 <= number < 3600:
        raise argparse.ArgumentTypeError(f"expected 0 to 3600, got {value}")
    return number


def _token(value: str) -> str:
    if not value.isascii() or not value.isprintable() or not value.strip():
        raise argparse.ArgumentTypeError("the token must be printable ASCII")
    return value


def main(argv: list[str] | None = None) -> None:
    """Start a simulator and serve until interrupted; print its connection as JSON on the first line."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_fastly_billing.testing", description=__doc__)
    parser.add_argument("--port", type=_port, default=8089, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--token", type=_token, default=DEFAULT_TOKEN, help="the API token it accepts")
    parser.add_argument(
        "--customers",
        type=int,
        choices=range(1, 1001),
        default=3,
        metavar="N",
        help="account customers (1 to 1000)",
    )
    parser.add_argument(
        "--mtd-pending",
        type=int,
        choices=range(0, 1001),
        default=0,
        metavar="N",
        help="202 answers before an estimate is ready",
    )
    parser.add_argument("--latency", type=_non_negative, default=0.0, help="seconds added to every answer")
    args = parser.parse_args(argv)
    sim = FastlySimulator(
        port=args.port,
        token=args.token,
        account_customers=args.customers,
        mtd_pending=args.mtd_pending,
        latency=args.latency,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sim:
        print(
            json.dumps({"url": sim.url, "customer_ids": sim.customers, "connection": sim.connection()}),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
