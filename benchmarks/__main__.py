"""``make bench``: every benchmark, its median ratio and absolute figures; results in benchmarks/results.json."""

from __future__ import annotations

import importlib
import json
import sys

from benchmarks import table
from benchmarks.common import save

BENCHMARKS = ("http", "frames", "load", "fanout", "memory", "peer", "parse", "download")


def main(names: list[str]) -> None:
    results = {}
    for name in names or BENCHMARKS:
        print(f"== {name}", flush=True)
        results[name] = importlib.import_module(f"benchmarks.{name}").run()
        print(json.dumps(results[name], indent=2), flush=True)
    print(f"\nResults: {save(results)}\n")
    table.main()


if __name__ == "__main__":
    main(sys.argv[1:])
