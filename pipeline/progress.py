"""Live progress per stage: workers report counts to a small Ray actor, the driver renders them.

Ray Data's own bars show fused operators (`read->...->write`), not our stages, so each stage wrapper
reports rows in, rows rejected and seconds spent; the totals also give per-stage timings in stats.json.
Counts are for watching a run; the funnel in stats.json is computed from the committed files.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Self

import pyarrow as pa
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.routing import count_active

POLL_SECONDS = 0.5
FLUSH_SECONDS = 1.0
PLAIN_EVERY_SECONDS = 10.0


class StageCounter:
    """Ray actor holding running totals per stage label."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])

    def add(self, counts: dict[str, list[float]]) -> None:
        for label, (rows_in, rejected, seconds) in counts.items():
            total = self.totals[label]
            total[0] += rows_in
            total[1] += rejected
            total[2] += seconds

    def snapshot(self) -> dict[str, list[float]]:
        return dict(self.totals)


class Tally:
    """A worker's counts, sent to the StageCounter actor about once a second rather than once per batch:
    a remote call per stage per 256 rows cost measurable time on 2 cores."""

    def __init__(self, counter) -> None:
        self.counter = counter
        self.pending: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        self.last_flush = time.monotonic()

    def add(self, label: str, rows_in: int, rejected: int, seconds: float) -> None:
        entry = self.pending[label]
        entry[0] += rows_in
        entry[1] += rejected
        entry[2] += seconds
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.counter.add.remote(dict(self.pending))
            self.pending.clear()
        self.last_flush = time.monotonic()


_TALLIES: dict[str, Tally] = {}


def tally(counter) -> Tally | None:
    """The process-wide tally for this run's counter (None when the run has no progress reporting)."""
    if counter is None:
        return None
    key = counter._actor_id.hex()
    if key not in _TALLIES:
        _TALLIES[key] = Tally(counter)
    return _TALLIES[key]


def _table(labels: list[str], snapshot: dict[str, list[float]], elapsed: float) -> Table:
    table = Table(title=f"running: {elapsed:.0f} s")
    for column in ("stage", "rows in", "kept", "rejected", "busy s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for label in labels:
        rows_in, rejected, seconds = snapshot.get(label, (0, 0, 0.0))
        table.add_row(
            label, f"{int(rows_in):,}", f"{int(rows_in - rejected):,}", f"{int(rejected):,}", f"{seconds:.1f}"
        )
    return table


class ProgressReporter:
    """Owns the counter actor and a thread that shows its totals until the run ends."""

    def __init__(self, labels: list[str], console: Console | None):
        import ray

        self.labels = labels
        self.console = console
        self.counter = ray.remote(StageCounter).options(num_cpus=0).remote()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.perf_counter()

    def totals(self) -> dict[str, list[float]]:
        import ray

        return ray.get(self.counter.snapshot.remote())

    def _loop(self) -> None:
        if self.console is None:
            return
        if self.console.is_terminal:
            with Live(console=self.console, refresh_per_second=4, transient=True) as live:
                while not self._stop.wait(POLL_SECONDS):
                    live.update(_table(self.labels, self.totals(), time.perf_counter() - self._started))
            return
        while not self._stop.wait(PLAIN_EVERY_SECONDS):
            snapshot = self.totals()
            parts = [f"{label} {int(snapshot[label][0]):,}" for label in self.labels if label in snapshot]
            self.console.print(
                f"[{time.perf_counter() - self._started:.0f} s] rows in: " + ", ".join(parts), highlight=False
            )

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name="pipeline-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def counted(
    counter, label: str, fn: Callable[[pa.Table], pa.Table], rows_in: bool = True
) -> Callable[[pa.Table], pa.Table]:
    """Wrap a batch function so that it reports rows in, rows rejected and seconds to the progress actor;
    a second step under the same label (`rows_in=False`) adds its rejects without counting rows twice."""

    def run(batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        before = count_active(batch)
        result = fn(batch)
        after = count_active(result)
        counts = tally(counter)
        if counts is not None:
            counts.add(label, before if rows_in else 0, before - after, time.perf_counter() - started)
        return result

    return run


def flushed(counter, fn: Callable[[pa.Table], pa.Table]) -> Callable[[pa.Table], pa.Table]:
    """For operators that see whole blocks (rare calls): send the counts after every call."""

    def run(batch: pa.Table) -> pa.Table:
        result = fn(batch)
        counts = tally(counter)
        if counts is not None:
            counts.flush()
        return result

    run.__name__ = run.__qualname__ = getattr(fn, "__name__", "run")
    return run
