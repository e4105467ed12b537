"""
The long run of the mutation fuzzer (tests/fuzzing.py) outside CI: many more cases per
parser than the suite's bounded run (tests/test_fuzz.py), from any seed, in parallel
worker processes; crashing inputs are written to a folder, one file each, named by target,
seed and case number, so `--first N --cases 1` reproduces one.

    .venv/bin/python bench/fuzz.py [--targets sip-message,sdp,...] [--cases 200000]
        [--seed 1] [--first 0] [--workers 2] [--save fuzz-crashes]

It prints one JSON line per target: cases run, crashes, cases per second, and the first
few crash messages. It exits 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzzing import TARGETS, fuzz  # noqa: E402


def _slice(name: str, count: int, seed: int, first: int) -> list:
    return fuzz(TARGETS[name], count, seed, first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated: " + ", ".join(TARGETS))
    parser.add_argument("--cases", type=int, default=200_000, help="cases per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first", type=int, default=0, help="the first case number")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--save", default="fuzz-crashes", help="folder for crashing inputs")
    options = parser.parse_args()
    names = [name.strip() for name in options.targets.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)}")
    save = Path(options.save)
    crashed = False
    with ProcessPoolExecutor(options.workers) as pool:
        for name in names:
            started = time.perf_counter()
            step = max(1, options.cases // (options.workers * 8))
            slices = [(start, min(step, options.first + options.cases - start))
                      for start in range(options.first, options.first + options.cases, step)]
            crashes = [crash for found in pool.map(_slice, *zip(*[(name, count, options.seed, start)
                                                                    for start, count in slices]))
                       for crash in found]
            elapsed = time.perf_counter() - started
            for crash in crashes:
                save.mkdir(parents=True, exist_ok=True)
                (save / f"{name}-{options.seed}-{crash.case}.bin").write_bytes(crash.data)
            crashed = crashed or bool(crashes)
            print(json.dumps({"target": name, "seed": options.seed, "cases": options.cases,
                              "crashes": len(crashes), "cases_per_second": round(options.cases / elapsed),
                              "first_crashes": [f"case {crash.case}: {crash.error.splitlines()[-1]}"
                                                for crash in crashes[:5]]}), flush=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
