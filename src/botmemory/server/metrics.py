"""``GET /metrics``: Prometheus text exposition, rendered from the memory's own counters.

No metrics library: :class:`~botmemory.stats.MemoryStats` counts turns, turn latency,
lock waits and backend errors; :class:`~botmemory.janitor.JanitorTotals` counts the
janitor's runs and what they removed.
"""

from __future__ import annotations

from typing import Final

from botmemory.janitor import Janitor
from botmemory.stats import Histogram, MemoryStats

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""What the janitor removes, as the ``kind`` label."""


def _histogram(name: str, help_text: str, histogram: Histogram) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        lines.append(f'{name}_bucket{{le="{bound:g}"}} {count}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {histogram.total}')
    lines.append(f"{name}_sum {_number(histogram.sum)}")
    lines.append(f"{name}_count {histogram.total}")
    return lines


def _metric(name: str, kind: str, help_text: str, samples: dict[str, float]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_number(value)}" for labels, value in samples.items()]
    return lines


def _number(value: float) -> str:
    """Every digit of a sample: ``12345678``, ``1700000000.25``."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render_metrics(stats: MemoryStats, janitor: Janitor, health: int) -> str:
    """Render every metric in the Prometheus text format."""
    totals = janitor.totals
    last = janitor.last_report
    removed = {f'{{kind="{kind}"}}': float(n) for kind, n in totals.removed.items()}
    lines = [
        *_metric("botmemory_turns_total", "counter", "Turns persisted.", {"": stats.turns}),
        *_metric(
            "botmemory_turn_errors_total",
            "counter",
            "Turns that raised and persisted nothing.",
            {"": stats.turn_errors},
        ),
        *_metric(
            "botmemory_backend_errors_total",
            "counter",
            "Turns that failed because the storage failed.",
            {"": stats.backend_errors},
        ),
        *_metric(
            "botmemory_turn_conflicts_total",
            "counter",
            "Turn attempts that found what they read changed, and wrote nothing.",
            {"": stats.conflicts},
        ),
        *_metric(
            "botmemory_turn_retries_total",
            "counter",
            "Turn attempts run again after a conflict.",
            {"": stats.retries},
        ),
        *_metric(
            "botmemory_health_check_failures_total",
            "counter",
            "Health checks that found the storage unreachable.",
            {"": health},
        ),
        *_histogram(
            "botmemory_turn_duration_seconds",
            "Wall-clock duration of a turn, lock wait included.",
            stats.turn_seconds,
        ),
        *_histogram(
            "botmemory_lock_wait_seconds",
            "Time a turn waited for an earlier turn of its session.",
            stats.lock_wait_seconds,
        ),
        *_metric(
            "botmemory_janitor_runs_total",
            "counter",
            "Janitor runs, by result.",
            {
                '{result="ok"}': totals.runs - totals.failed_runs,
                '{result="error"}': totals.failed_runs,
            },
        ),
        *_metric(
            "botmemory_janitor_removed_total",
            "counter",
            "Rows the janitor removed, by kind.",
            removed,
        ),
        *_metric(
            "botmemory_janitor_last_run_timestamp_seconds",
            "gauge",
            "When the last janitor run started (server clock, epoch seconds).",
            {"": last.started_at if last else 0.0},
        ),
        *_metric(
            "botmemory_janitor_last_run_duration_seconds",
            "gauge",
            "Wall-clock seconds the last janitor run took.",
            {"": last.duration if last else 0.0},
        ),
        *_metric(
            "botmemory_janitor_running",
            "gauge",
            "1 while the janitor loop runs.",
            {"": 1.0 if janitor.running else 0.0},
        ),
    ]
    return "\n".join(lines) + "\n"
