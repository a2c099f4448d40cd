"""One pipeline run: validate, plan, prepare the output, execute on Ray, commit the ledger and the funnel."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from pipeline import __version__
from pipeline.cluster import init_ray
from pipeline.commit import OutputLayout, write_json_atomic
from pipeline.executor import RunOutput, execute
from pipeline.funnel import StageFunnel, build_funnel
from pipeline.manifest import load_manifest
from pipeline.planner import Plan, build_plan
from pipeline.progress import ProgressReporter
from pipeline.schema import REJECT_SCHEMA, SCHEMA_VERSION
from pipeline.sink import empty_file


@dataclass
class RunSummary:
    output_dir: Path
    funnel: list[StageFunnel]
    failed_shards: list[dict]
    kept: int
    rejected: int
    seconds: float
    complete: bool


def plan_manifest(manifest_path: str | Path, output: str | None = None) -> Plan:
    return build_plan(load_manifest(manifest_path), output)


def run_manifest(
    manifest_path: str | Path,
    *,
    output: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
    console: Console | None = None,
) -> RunSummary:
    """Run a manifest end to end; raises ManifestError / OutputExistsError before any work starts."""
    started = time.perf_counter()
    plan = plan_manifest(manifest_path, output)
    layout = OutputLayout(plan.output_dir)
    run_id = time.strftime("%Y%m%dT%H%M%S")
    layout.prepare(run_id, overwrite)
    ray_settings = plan.manifest.ray
    cluster = init_ray(address or ray_settings.address, ray_settings.num_cpus)
    ray_ready = time.perf_counter()

    with ProgressReporter(plan.labels, console) as progress:
        result = execute(plan, layout, run_id, progress.counter)
        busy_seconds = {label: round(total[2], 3) for label, total in progress.totals().items()}
    files = _committed_files(result.records, plan, layout, run_id)
    failed = _failed_shards(result.records, result)
    funnel = build_funnel(
        result.records,
        result.source_of_shard,
        [s.label for s in plan.sources],
        [s.label for s in plan.steps if not s.companion],
        busy_seconds,
    )
    kept = sum(r["rows"] for r in files if r["kind"] == "data")
    rejected = sum(r["rows"] for r in files if r["kind"] == "rejects")
    seconds = time.perf_counter() - started
    stats = {
        "manifest": str(plan.manifest.path),
        "manifest_fingerprint": plan.manifest.fingerprint,
        "run_id": run_id,
        "rows_in": sum(f.rows_in for f in funnel[: len(plan.sources)]),
        "kept": kept,
        "rejected": rejected,
        "funnel": [f.as_dict() for f in funnel],
        "failed_shards": failed,
        "ray": cluster,
        "timings": {
            "total_seconds": round(seconds, 3),
            "ray_start_seconds": round(ray_ready - started, 3),
            "execute_seconds": round(result.seconds, 3),
        },
    }
    write_json_atomic(layout.stats_path, stats)
    complete = not failed
    if complete:
        _write_ledger(layout, plan, run_id, files, kept, rejected)
    return RunSummary(plan.output_dir, funnel, failed, kept, rejected, seconds, complete)


def _committed_files(records: list[dict], plan: Plan, layout: OutputLayout, run_id: str) -> list[dict]:
    """The files the sink committed, plus a zero-row file where a directory got none (readers see the schema)."""
    files = [r for r in records if r["kind"] in ("data", "rejects")]
    for kind, directory, schema in (
        ("data", layout.data_dir, plan.schema),
        ("rejects", layout.rejects_dir, REJECT_SCHEMA),
    ):
        if not any(r["kind"] == kind for r in files):
            files.append(empty_file(schema, layout, run_id, directory))
    return files


def _write_ledger(
    layout: OutputLayout, plan: Plan, run_id: str, files: list[dict], kept: int, rejected: int
) -> None:
    """`_SUCCESS.json`, atomically and last: its presence means every listed file is complete."""
    write_json_atomic(
        layout.success_path,
        {
            "complete": True,
            "schema_version": SCHEMA_VERSION,
            "package_version": __version__,
            "manifest_fingerprint": plan.manifest.fingerprint,
            "run_id": run_id,
            "rows": {"kept": kept, "rejected": rejected},
            "files": sorted(
                ({k: r[k] for k in ("path", "shard", "rows", "sha256", "bytes")} for r in files),
                key=lambda r: r["path"],
            ),
        },
    )


def _failed_shards(records: list[dict], result: RunOutput) -> list[dict]:
    """One entry per failed shard: its file, the stage that failed and the last line of the cause."""
    failed: dict[str, dict] = {}
    for record in records:
        shard = record["shard"]
        if record["kind"] != "failed_shard" or shard in failed:
            continue
        detail = (record["detail"] or "").strip()
        failed[shard] = {
            "shard": shard,
            "uri": result.uri_of_shard.get(shard),
            "source": result.source_of_shard.get(shard),
            "stage": record["stage"],
            "cause": detail.splitlines()[-1] if detail else "",
            "traceback": detail,
        }
    return sorted(failed.values(), key=lambda r: r["shard"])
