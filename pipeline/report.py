"""What the CLI prints: the end-of-run summary and query results, as tables a person reads."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.run import RunSummary


def print_summary(summary: RunSummary, console: Console) -> None:
    funnel = Table(title="Funnel", show_lines=False)
    for column in ("stage", "rows in", "kept", "rejected", "top reasons"):
        funnel.add_column(column, justify="left" if column in ("stage", "top reasons") else "right")
    reasons: Counter[tuple[str, str]] = Counter()
    for stage in summary.funnel:
        top = ", ".join(f"{r} {n}" for r, n in sorted(stage.reasons.items(), key=lambda kv: -kv[1])[:3])
        funnel.add_row(stage.stage, f"{stage.rows_in:,}", f"{stage.kept:,}", f"{stage.rejected:,}", top)
        reasons.update({(stage.stage, r): n for r, n in stage.reasons.items()})
    console.print(funnel)
    if reasons:
        by_reason = Table(title="Rejects by reason")
        for column in ("stage", "reason", "rows"):
            by_reason.add_column(column, justify="right" if column == "rows" else "left")
        for (stage, reason), n in reasons.most_common():
            by_reason.add_row(stage, reason, f"{n:,}")
        console.print(by_reason)
    for failed in summary.failed_shards:
        console.print(f"[red]FAILED shard[/red] {failed['uri']} at {failed['stage']}: {failed['cause']}")
    status = "complete" if summary.complete else f"INCOMPLETE: {len(summary.failed_shards)} shard(s) failed"
    console.print(
        f"{summary.kept:,} kept, {summary.rejected:,} rejected in {summary.seconds:.1f} s ({status}); "
        f"output: {summary.output_dir}"
    )
    out = shlex.quote(str(summary.output_dir))
    console.print(
        f'Try: pipeline query {out} "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY n DESC"'
    )


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, list):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {k: _cell(v) for k, v in value.items()}
    return value


def format_rows(columns: list[str], rows: list[tuple], fmt: str, console: Console) -> None:
    rows = [tuple(_cell(v) for v in row) for row in rows]
    if fmt == "json":
        console.print_json(json.dumps([dict(zip(columns, row)) for row in rows], default=str))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        console.out(buffer.getvalue(), end="", highlight=False)
    else:
        table = Table()
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
