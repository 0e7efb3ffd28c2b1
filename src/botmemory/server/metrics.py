"""``GET /metrics``: the memory's and the janitor's counters, through ``prometheus_client``.

:class:`PrometheusExport` listens to a memory's :class:`~botmemory.stats.MemoryStats`
and its janitor's :class:`~botmemory.janitor.JanitorTotals`, and counts each event in
``prometheus_client`` metrics as it happens.

With several server processes (``PROMETHEUS_MULTIPROC_DIR`` set, as ``prometheus_client``
defines its multi-process mode), each process writes its counts to files in that
folder, and any process's ``/metrics`` adds up every process's: the numbers are the
whole server's, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from botmemory.janitor import KINDS, JanitorReport
from botmemory.memory import Memory
from botmemory.stats import LATENCY_BUCKETS

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_ENV", "PrometheusExport"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The text format every Prometheus version reads (what ``generate_latest`` writes)."""
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The folder where each process writes its counts in multi-process mode."""


class PrometheusExport:
    """The metrics of one memory and its janitor, in a registry of their own."""

    def __init__(self, memory: Memory) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns = Counter("botmemory_turns", "Turns persisted.", registry=r)
        self.turn_errors = Counter(
            "botmemory_turn_errors", "Turns that raised and persisted nothing.", registry=r
        )
        self.backend_errors = Counter(
            "botmemory_backend_errors", "Turns that failed because the storage failed.", registry=r
        )
        self.conflicts = Counter(
            "botmemory_turn_conflicts",
            "Turn attempts that found what they read changed, and wrote nothing.",
            registry=r,
        )
        self.retries = Counter(
            "botmemory_turn_retries", "Turn attempts run again after a conflict.", registry=r
        )
        self.health_failures = Counter(
            "botmemory_health_check_failures",
            "Health checks that found the storage unreachable.",
            registry=r,
        )
        self.turn_seconds = Histogram(
            "botmemory_turn_duration_seconds",
            "Wall-clock duration of a turn, lock wait included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lock_wait_seconds = Histogram(
            "botmemory_lock_wait_seconds",
            "Time a turn waited for an earlier turn of its session, its load included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._janitor_metrics(r)
        memory.stats.sinks.append(self)
        memory.janitor.totals.sinks.append(self)
        self.janitor_looping(memory.janitor.running)

    def _janitor_metrics(self, r: CollectorRegistry) -> None:
        self.janitor_runs = Counter(
            "botmemory_janitor_runs", "Janitor runs, by result.", ["result"], registry=r
        )
        self.janitor_removed = Counter(
            "botmemory_janitor_removed", "Rows the janitor removed, by kind.", ["kind"], registry=r
        )
        for result in ("ok", "error"):
            self.janitor_runs.labels(result)
        for kind in KINDS:
            self.janitor_removed.labels(kind)
        self.janitor_last_run = Gauge(
            "botmemory_janitor_last_run_timestamp_seconds",
            "When the last janitor run started (server clock, epoch seconds).",
            registry=r,
            multiprocess_mode="max",
        )
        self.janitor_last_duration = Gauge(
            "botmemory_janitor_last_run_duration_seconds",
            "Wall-clock seconds the last janitor run took.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.janitor_running = Gauge(
            "botmemory_janitor_running",
            "1 while the janitor loop runs.",
            registry=r,
            multiprocess_mode="livemax",
        )

    # -- the sinks' methods: see botmemory.stats.StatsSink and botmemory.janitor.JanitorSink
    def turn_done(self, seconds: float) -> None:
        self.turns.inc()
        self.turn_seconds.observe(seconds)

    def turn_failed(self, backend: bool) -> None:
        self.turn_errors.inc()
        if backend:
            self.backend_errors.inc()

    def conflicted(self) -> None:
        self.conflicts.inc()

    def retried(self) -> None:
        self.retries.inc()

    def lock_waited(self, seconds: float) -> None:
        self.lock_wait_seconds.observe(seconds)

    def janitor_ran(self, report: JanitorReport) -> None:
        self.janitor_runs.labels("ok" if report.error is None else "error").inc()
        for kind in KINDS:
            self.janitor_removed.labels(kind).inc(getattr(report, kind))
        self.janitor_last_run.set(report.started_at)
        self.janitor_last_duration.set(report.duration)

    def janitor_looping(self, running: bool) -> None:
        self.janitor_running.set(1.0 if running else 0.0)

    def process_ended(self) -> None:
        """Tell the other processes this one stopped: its live gauges stop counting."""
        if os.environ.get(MULTIPROCESS_ENV):
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        """Every metric in the Prometheus text format: the whole server's, in multi-process
        mode, else this process's."""
        if os.environ.get(MULTIPROCESS_ENV):
            every_process = CollectorRegistry()
            MultiProcessCollector(every_process)  # type: ignore[no-untyped-call]
            return generate_latest(every_process)
        return generate_latest(self.registry)
