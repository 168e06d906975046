"""`make bench`: runs every benchmark module in turn and prints a summary.

Benchmarks are not tests: they measure, against the real stack, and report figures and ratios
against a raw baseline measured in the same run. Run one alone with `python -m bench NAME`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import time

MODULES = ["registration", "reporting"]


def main() -> None:
    wanted = sys.argv[1:] or MODULES
    results: dict[str, object] = {}
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== bench {name} ===", flush=True)
        started = time.monotonic()
        out = module.main()
        if inspect.isawaitable(out):
            out = asyncio.run(out)  # type: ignore[arg-type]
        results[name] = out
        print(f"=== {name} done in {time.monotonic() - started:.1f}s", flush=True)
    print("\nSUMMARY " + json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
