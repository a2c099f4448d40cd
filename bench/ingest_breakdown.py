"""Where the pipeline's time goes, relative to bare decoding, in one command.

All rates are images/s on the corpus `bench.ingest_throughput` built (run that first), each contender
alternated with the others so that they see the same machine state:
1. `Pool(2)`, bare decode of preloaded bytes: the baseline of `bench.ingest_throughput`;
2. `Pool(2)`, the pipeline's own per-shard work (read tar, build rows, decode and filter through the
   routing, commit Parquet): what the pipeline costs before any Ray;
3. the same per-shard work as plain Ray tasks, and inside Ray Data: what Ray and Ray Data add;
4. `pipeline run` in this process on the already-started cluster: what the executor adds, without the
   start-up a fresh `pipeline run` pays.

    .venv/bin/python -m bench.ingest_breakdown [--workdir bench_out/large] [--shards 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from PIL import Image

from bench.ingest_throughput import REPO
from pipeline.cluster import init_ray
from pipeline.commit import OutputLayout
from pipeline.executor import fused, read_shards, segments
from pipeline.run import plan_manifest, run_manifest
from pipeline.sink import write_block
from pipeline.stage import Shard
from stages.ingest.webdataset import iter_tar_samples

_SHARDS: list[Shard] = []  # set before the pools fork
_BLOBS: list[list[bytes]] = []
_RUN: list[Callable[[Shard], int]] = []


def _per_shard_work(manifest: Path, output: Path) -> tuple[list[Shard], Callable[[Shard], int]]:
    """The per-shard work of `pipeline run` for this manifest, as a function of one shard."""
    plan = plan_manifest(manifest, output=str(output))
    layout = OutputLayout(plan.output_dir)
    layout.prepare("bench", overwrite=True)
    chain = fused(segments(plan.steps)[0], None)

    def run(shard: Shard) -> int:
        item = pa.table(
            {"source": [0], "shard_id": [shard.shard_id], "uri": [shard.uri], "relative": [shard.relative]}
        )
        tables = list(read_shards(item, plan.sources, None, chain))
        write_block(pa.concat_tables(tables, promote_options="permissive"), plan.schema, layout, "bench")
        return sum(t.num_rows for t in tables)

    return plan.sources[0].stage.list_shards(), run


def _decode(index: int) -> int:
    for blob in _BLOBS[index]:
        Image.open(io.BytesIO(blob)).load()
    return len(_BLOBS[index])


def _work(index: int) -> int:
    return _RUN[0](_SHARDS[index])


def _pool_rate(fn: Callable[[int], int], count: int) -> float:
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(abs, range(4))  # workers started before the clock
        started = time.perf_counter()
        images = sum(pool.map(fn, range(count), chunksize=1))
        return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench_out" / "large")
    parser.add_argument("--shards", type=int, default=16, help="shards used by the pool and Ray contenders")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray
    import ray.data

    manifest = args.workdir / "ingest_throughput.yaml"
    shards, run = _per_shard_work(manifest, args.workdir / "breakdown_out")
    _SHARDS[:] = shards[: args.shards]
    _BLOBS[:] = [[s.image_bytes for s in iter_tar_samples(shard.uri)] for shard in _SHARDS]
    _RUN[:] = [run]

    init_ray(None, 2)
    as_task = ray.remote(num_cpus=1)(run)
    items = [{"shard_id": s.shard_id, "uri": s.uri, "relative": s.relative} for s in _SHARDS]

    def as_batch(batch: pa.Table) -> pa.Table:
        row = batch.to_pylist()[0]
        return pa.table({"n": [run(Shard(row["shard_id"], row["uri"], row["relative"]))]})

    def ray_tasks() -> float:
        started = time.perf_counter()
        images = sum(ray.get([as_task.remote(s) for s in _SHARDS]))
        return images / (time.perf_counter() - started)

    def ray_data() -> float:
        started = time.perf_counter()
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        images = sum(
            r["n"] for r in ds.map_batches(as_batch, batch_format="pyarrow", batch_size=1).take_all()
        )
        return images / (time.perf_counter() - started)

    def pipeline_run() -> float:
        out = args.workdir / "breakdown_run"
        run_manifest(manifest, output=str(out), overwrite=True)
        stats = json.loads((out / "stats.json").read_text())
        return stats["kept"] / stats["timings"]["execute_seconds"]

    contenders: dict[str, Callable[[], float]] = {
        "Pool(2) bare decode": lambda: _pool_rate(_decode, len(_SHARDS)),
        "Pool(2) pipeline work": lambda: _pool_rate(_work, len(_SHARDS)),
        "Ray tasks pipeline work": ray_tasks,
        "Ray Data pipeline work": ray_data,
        "pipeline run, warm cluster": pipeline_run,
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, contender in contenders.items():
            rates[name].append(contender())
    bare = statistics.median(rates["Pool(2) bare decode"])
    print(
        f"images/s, median of {args.rounds} alternated rounds ({len(_SHARDS)} shards; the last row all of them)"
    )
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  {name:28s} {rate:6.0f}  {rate / bare:4.2f} of bare decode")


if __name__ == "__main__":
    main()
