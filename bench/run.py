"""Run the benchmark suite and keep what it printed: ``make bench`` and ``make bench-quick``.

Each benchmark runs in a process of its own, one after the other; its output is shown
as it comes and saved, with how long it took and how loaded the machine was before and
after (the load average and the CPUs), in ``bench/results/<date>.json``. A benchmark
that fails (a lost count, a missed exactness check) makes the suite exit with status 1.

    python bench/run.py [--quick] [--only turns,janitor] [--out FILE]

``--quick`` runs each benchmark small (about a minute in all): to check that the suite
works, not to compare numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One benchmark script, with its arguments for a full and for a quick run."""

    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


SUITE = (
    Bench("turns", "turns.py", quick=("--users", "1000", "--turns", "300", "--rmw-turns", "2")),
    Bench("janitor", "janitor.py", quick=("--sizes", "10000,100000")),
    Bench("converse", "converse.py", quick=("--requests", "300")),
    Bench("peers", "peers.py", quick=("--keys", "1000", "--users", "1000", "--turns", "1000")),
    Bench(
        "langgraph_store",
        "langgraph_store.py",
        quick=("--items", "200", "--searches", "50", "--rounds", "1"),
    ),
    Bench(
        "scale",
        "scale.py",
        quick=("--requests", "200", "--users", "8", "--runs", "1", "--backends", "sqlite"),
    ),
)


def machine() -> dict[str, Any]:
    """What the numbers depend on: CPUs, load, Python, the commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit or None,
    }


def run(bench: Bench, quick: bool) -> dict[str, Any]:
    """Run one benchmark, echoing its output; return what to save of it."""
    command = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
    print(f"\n=== {bench.name}: {' '.join(command[1:])}", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    return {
        "name": bench.name,
        "command": command[1:],
        "exit_code": process.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "output": lines,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, help="where to save (default bench/results/...)")
    args = parser.parse_args()
    names = {b.name for b in SUITE}
    unknown = set(args.only.split(",")) - names if args.only else set()
    if unknown:
        parser.error(f"no benchmark {', '.join(sorted(unknown))}: choose from {', '.join(names)}")
    chosen = [b for b in SUITE if not args.only or b.name in args.only.split(",")]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    out = args.out or BENCH / "results" / f"{stamp}{'-quick' if args.quick else ''}.json"
    report = {"date": stamp, "quick": args.quick, "machine": machine(), "benchmarks": []}
    for bench in chosen:
        report["benchmarks"].append(run(bench, args.quick))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")  # kept even if a later one hangs
    failed = [b["name"] for b in report["benchmarks"] if b["exit_code"] != 0]
    print(f"\nsaved to {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
