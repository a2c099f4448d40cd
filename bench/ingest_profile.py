"""Where the time of bench.ingest_throughput's pipeline goes, to explain a ratio below the 70% bar.

Part 1 calls each step of the pipeline directly on the corpus's tables in this one process (no Ray):
seconds per 1000 images for tar reading, each stage, and the sink, next to a bare Pillow decode of the
same bytes, so any per-image work beyond the decode shows up. Part 2 runs the manifest once in-process
on a cold Ray instance and reads Ray's task timeline: how long before the first task starts, how staggered
the workers start, the idle gaps between tasks, and the CPU other processes (driver, Ray daemons) use.

Uses private helpers of pipeline/ (the executor's read path, the sink), so it may need updating when
those change. Run bench.ingest_throughput first (it builds the corpus and the manifest):

    .venv/bin/python -m bench.ingest_profile [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from bench.ingest_throughput import REPO
from pipeline.commit import OutputLayout
from pipeline.executor import _with_position
from pipeline.manifest import load_manifest
from pipeline.planner import build_plan
from pipeline.routing import run_on_active
from pipeline.sink import conform, write_block

TICK = os.sysconf("SC_CLK_TCK")


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def profile_steps(manifest: Path, scratch: Path) -> dict[str, float]:
    """Seconds per 1000 images of each step, run serially in this process on every shard."""
    plan = build_plan(load_manifest(manifest), str(scratch / "out"))
    layout = OutputLayout(scratch / "out")
    layout.prepare("profile", overwrite=True)  # the run id write_block stages under
    source = plan.sources[0]
    seconds: Counter[str] = Counter()
    tables: list[pa.Table] = []
    for shard in source.stage.list_shards():
        elapsed, raw = _timed(lambda shard=shard: list(source.stage.read_shard(shard)))
        seconds["read_shard (tar + rows)"] += elapsed
        start = 0
        for table in raw:  # type: ignore[union-attr]
            elapsed, table = _timed(lambda t=table, s=shard, n=start: _with_position(t, source, s, n))
            seconds["tag rows (shard, ordinal)"] += elapsed
            start += table.num_rows  # type: ignore[union-attr]
            tables.append(table)  # type: ignore[arg-type]
    images = sum(t.num_rows for t in tables)
    blobs = [m[0]["bytes"] for t in tables for m in t["images"].to_pylist()]

    def bare() -> None:
        for data in blobs:
            with Image.open(io.BytesIO(data)) as image:
                image.load()

    seconds["(reference) bare Image.open + load"] = _timed(bare)[0]
    for planned in plan.steps:
        outputs = []
        for table in tables:
            elapsed, table = _timed(lambda t=table, p=planned: run_on_active(t, p.label, p.stage.process))
            seconds[planned.label] += elapsed
            outputs.append(table)
        tables = outputs
    for table in tables:
        seconds["write_block (sink, all of it)"] += _timed(
            lambda t=table: write_block(t, plan.schema, layout, "profile")
        )[0]
    # The sink's parts, redone on the same tables: the Parquet encode, and the commit's fsync + sha256.
    probe = scratch / "probe.parquet"
    for table in (conform(t, plan.schema) for t in tables):
        seconds["  of which parquet zstd + page checksums"] += _timed(
            lambda t=table: pq.write_table(t, probe, compression="zstd", write_page_checksum=True)
        )[0]
        seconds["  (alternative) parquet uncompressed"] += _timed(
            lambda t=table: pq.write_table(t, probe, compression="none")
        )[0]
        seconds["  of which sha256 of the file"] += _timed(
            lambda: hashlib.sha256(probe.read_bytes()).hexdigest()
        )[0]
    return {name: round(1000 * s / images, 3) for name, s in seconds.items()}


def _cpu_by_kind() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every live process, labelled driver / Ray worker / Ray daemon."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        if pid == os.getpid():
            kind = "driver"
        elif cmd.startswith("ray::"):
            kind = "Ray worker processes"
        elif "ray" in cmd:
            kind = "Ray daemons (raylet, gcs, agents, monitors)"
        else:
            continue
        found[pid] = (kind, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def profile_ray(manifest: Path, scratch: Path, images: int) -> dict[str, object]:
    """One cold in-process run: its timings, the task timeline relative to the start of execute, CPU use."""
    import ray

    import pipeline.run as run_module

    marks: dict[str, object] = {}
    execute = run_module.execute

    def traced(*args, **kwargs):  # type: ignore[no-untyped-def]
        marks["start"], marks["cpu"] = time.time(), _cpu_by_kind()
        result = execute(*args, **kwargs)
        marks["end"], marks["cpu_end"] = time.time(), _cpu_by_kind()
        return result

    run_module.execute = traced
    try:
        summary = run_module.run_manifest(manifest, output=str(scratch / "ray_out"), overwrite=True)
        events = ray.timeline()
    finally:
        run_module.execute = execute
    if summary.kept != images:
        raise SystemExit(f"pipeline kept {summary.kept} of {images} images")
    start = float(marks["start"])  # type: ignore[arg-type]
    tasks = sorted(
        (e for e in events if e.get("name", "").endswith("_map_task") and e["ts"] / 1e6 >= start),
        key=lambda e: e["ts"],
    )
    by_worker: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in tasks:
        by_worker[e["tid"]].append((e["ts"] / 1e6 - start, e["dur"] / 1e6))
    gaps = [b[0] - (a[0] + a[1]) for spans in by_worker.values() for a, b in pairwise(spans)]
    before, after = marks["cpu"], marks["cpu_end"]
    cpu: Counter[str] = Counter()
    for pid, (kind, total) in after.items():  # type: ignore[union-attr]
        cpu[kind] += total - before.get(pid, (kind, 0.0))[1]  # type: ignore[union-attr]
    stats = json.loads((scratch / "ray_out" / "stats.json").read_text())
    return {
        "timings": stats["timings"],
        "tasks": len(tasks),
        "task_seconds_sum": round(sum(e["dur"] for e in tasks) / 1e6, 2),
        "first_task_starts_at": round(tasks[0]["ts"] / 1e6 - start, 2),
        "worker_first_task_starts_at": sorted(round(spans[0][0], 2) for spans in by_worker.values()),
        "task_seconds": [round(e["dur"] / 1e6, 2) for e in tasks],
        "gap_between_tasks_mean": round(sum(gaps) / max(1, len(gaps)), 3),
        "gaps_total": round(sum(gaps), 2),
        "last_task_ends_at": round(max(e["ts"] + e["dur"] for e in tasks) / 1e6 - start, 2),
        "execute_ends_at": round(float(marks["end"]) - start, 2),  # type: ignore[arg-type]
        "cpu_seconds_during_execute": {k: round(v, 2) for k, v in cpu.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "bench_out", help="as for bench.ingest_throughput"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    manifest = workdir / "ingest_throughput.yaml"
    corpus = json.loads((workdir / "corpus" / "corpus.json").read_text())
    scratch = workdir / "profile"
    scratch.mkdir(exist_ok=True)

    steps = profile_steps(manifest, scratch)
    print(f"per-step cost, one process, no Ray ({corpus['images']} images), seconds per 1000 images:")
    for name, value in steps.items():
        print(f"  {name:<48}{value:>7.3f}")
    pipeline_work = sum(v for k, v in steps.items() if not k.startswith(("(", " ")))
    bare = steps["(reference) bare Image.open + load"]
    print(
        f"  {'pipeline work, sum':<48}{pipeline_work:>7.3f}   = {pipeline_work / bare:.2f}x the bare decode"
    )

    ray_profile = profile_ray(manifest, scratch, corpus["images"])
    print("\none cold in-process run on Ray (seconds from the start of execute):")
    for name, value in ray_profile.items():
        print(f"  {name}: {value}")
    out = workdir / "ingest_profile.json"
    out.write_text(json.dumps({"steps_seconds_per_1000": steps, "ray": ray_profile}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
