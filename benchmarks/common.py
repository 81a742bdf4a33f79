"""Interleaved provider-versus-baseline timing, and the environment every benchmark runs in."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow" / "bench"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def compare(
    provider: Callable[[], Any],
    baseline: Callable[[], Any],
    rounds: int,
    prepare: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """
    Run provider and baseline alternately (the order flips each round) and return the median ratio.

    :param prepare: run before every single timing, untimed (a fresh table, say).
    """
    provider_times, baseline_times = [], []
    for n in range(rounds):
        pair = [(provider, provider_times), (baseline, baseline_times)]
        for action, times in pair if n % 2 == 0 else reversed(pair):
            if prepare:
                prepare()
            times.append(timed(action))
    ratios = [p / b for p, b in zip(provider_times, baseline_times, strict=True)]
    return {
        "ratio": statistics.median(ratios),
        "provider_s": statistics.median(provider_times),
        "baseline_s": statistics.median(baseline_times),
        "rounds": rounds,
    }


def save(results: dict[str, Any]) -> Path:
    """Merge ``results`` into benchmarks/results.json (a run of some benchmarks keeps the others')."""
    path = ROOT / "benchmarks" / "results.json"
    merged = {**(json.loads(path.read_text()) if path.exists() else {}), **results}
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return path
