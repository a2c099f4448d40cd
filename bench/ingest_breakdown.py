"""Where the pipeline's time goes, relative to bare decoding, in one command.

Three comparisons on the corpus `bench.ingest_throughput` built (run that first):
1. one process: bare Pillow decode vs the pipeline's own per-shard work (read tar, rows, decode and
   filters through the routing, commit Parquet), CPU time per image, alternated, medians;
2. on Ray with 2 CPUs: the same per-shard work as plain Ray tasks vs inside Ray Data (map_batches over
   shards), so Ray Data's own cost shows apart from Ray's.

    .venv/bin/python -m bench.ingest_breakdown [--workdir bench_out/large] [--shards 12] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import pyarrow as pa
from PIL import Image

from bench.ingest_throughput import REPO
from pipeline.cluster import init_ray
from pipeline.commit import OutputLayout
from pipeline.executor import fused, read_shards, segments
from pipeline.run import plan_manifest
from pipeline.sink import write_block
from pipeline.stage import Shard
from stages.ingest.webdataset import iter_tar_samples


def _work(manifest: Path, output: Path):
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


def one_process(shard: Shard, run, rounds: int) -> dict[str, float]:
    blobs = [s.image_bytes for s in iter_tar_samples(shard.uri)]
    times: dict[str, list[float]] = {"bare decode": [], "pipeline work": []}
    for _ in range(rounds):
        started = time.process_time()
        for blob in blobs:
            Image.open(io.BytesIO(blob)).load()
        times["bare decode"].append((time.process_time() - started) / len(blobs) * 1000)
        started = time.process_time()
        run(shard)
        times["pipeline work"].append((time.process_time() - started) / len(blobs) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def on_ray(shards: list[Shard], run, rounds: int) -> dict[str, float]:
    import ray
    import ray.data

    init_ray(None, 2)
    as_task = ray.remote(num_cpus=1)(run)
    items = [{"shard_id": s.shard_id, "uri": s.uri, "relative": s.relative} for s in shards]

    def as_batch(batch: pa.Table) -> pa.Table:
        row = batch.to_pylist()[0]
        return pa.table({"n": [run(Shard(row["shard_id"], row["uri"], row["relative"]))]})

    rates: dict[str, list[float]] = {"Ray tasks": [], "Ray Data": []}
    for _ in range(rounds):
        started = time.perf_counter()
        n = sum(ray.get([as_task.remote(s) for s in shards]))
        rates["Ray tasks"].append(n / (time.perf_counter() - started))
        started = time.perf_counter()
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        n = sum(r["n"] for r in ds.map_batches(as_batch, batch_format="pyarrow", batch_size=1).take_all())
        rates["Ray Data"].append(n / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench_out" / "large")
    parser.add_argument("--shards", type=int, default=12, help="shards used for the Ray comparison")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    shards, run = _work(args.workdir / "ingest_throughput.yaml", args.workdir / "breakdown_out")
    cpu = one_process(shards[0], run, args.rounds)
    print(f"one process, CPU ms per image (median of {args.rounds}):")
    for name, value in cpu.items():
        print(f"  {name:16s} {value:6.3f}")
    print(f"  bare / pipeline  {cpu['bare decode'] / cpu['pipeline work']:6.2f}")
    rates = on_ray(shards[: args.shards], run, max(2, args.rounds // 2))
    print("Ray, 2 CPUs, the same per-shard work, images/s (median):")
    for name, value in rates.items():
        print(f"  {name:16s} {value:6.0f}")
    print(f"  Ray Data / Ray tasks {rates['Ray Data'] / rates['Ray tasks']:.2f}")


if __name__ == "__main__":
    main()
