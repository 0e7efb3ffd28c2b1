"""``make bench`` and ``make bench-quick`` (bench/run.py): each benchmark of the suite
accepts the command line the suite gives it, quick and full. A script whose options
changed without the suite made ``make bench-quick`` fail."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="module", autouse=True)
def bench_on_path() -> Iterator[None]:
    """The scripts import each other, as run from bench/; their modules (``run``,
    ``turns``...) leave ``sys.modules`` afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(BENCH))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))
        for name in set(sys.modules) - before:
            if str(BENCH) in str(getattr(sys.modules[name], "__file__", "")):
                del sys.modules[name]


def suite() -> list[Any]:
    sys.path.insert(0, str(BENCH))
    try:
        return list(importlib.import_module("run").SUITE)
    finally:
        sys.path.remove(str(BENCH))
        del sys.modules["run"]


@pytest.mark.parametrize("bench", suite(), ids=lambda bench: bench.name)
@pytest.mark.parametrize("kind", ["quick", "full"])
def test_each_benchmark_takes_the_command_line_the_suite_gives_it(bench: Any, kind: str) -> None:
    script = importlib.import_module(Path(bench.script).stem)
    args = getattr(bench, kind)
    try:
        script.arguments().parse_args(list(args))
    except SystemExit:
        pytest.fail(f"bench/{bench.script} refuses {' '.join(args)}")
