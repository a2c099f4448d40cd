"""The Ray executor: sources become a Ray Dataset of pyarrow batches, stages become operators, then the sink.

Consecutive per-shard stages are fused into one function (the first run of them into the read itself), so
Ray Data buffers and re-blocks once, not once per stage; when nothing follows them, rows are committed
inside the read task and image bytes never pass through Ray's block buffers. A model-holding stage runs
as an actor pool; a global stage is a barrier: prepare per batch, summarize the whole dataset, apply the
summary per batch. Progress per stage goes to `pipeline.progress`.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from pipeline.commit import OutputLayout
from pipeline.planner import Plan, PlannedStage
from pipeline.progress import counted, flushed, tally
from pipeline.routing import active_mask, concat, count_active, run_on_active, settle, with_routing
from pipeline.schema import FAILED, ORDINAL, REJECT_DETAIL, REJECT_REASON, REJECT_STAGE, SHARD, row_id
from pipeline.sink import RECORD_SCHEMA, SHARD_MARKER_ORDINAL, write_block
from pipeline.stage import GlobalStage, Shard, SourceStage, Stage

SHARD_UNREADABLE = "failed:shard_unreadable"
FILE_TARGET_BYTES = 128 << 20  # about Ray Data's own block size, so files are alike on both paths


@dataclass
class RunOutput:
    run_id: str
    records: list[dict]
    source_of_shard: dict[str, str]
    uri_of_shard: dict[str, str]
    seconds: float


def _named(fn: Callable, label: str) -> Callable:
    fn.__name__ = fn.__qualname__ = label
    return fn


def _with_position(table: pa.Table, source: PlannedStage, shard: Shard, start: int) -> pa.Table:
    """Tag rows with their shard and ordinal, and settle the rows the source itself rejected."""
    table = table.append_column(SHARD, pa.array([shard.shard_id] * table.num_rows, pa.string()))
    table = table.append_column(ORDINAL, pa.array(range(start, start + table.num_rows), pa.int64()))
    return settle(table, source.label)


def _shard_marker(source: PlannedStage, shard: Shard, cause: str) -> pa.Table:
    """One non-sample row saying a shard could not be read; the sink lists it as a failed shard."""
    return with_routing(
        pa.table(
            {
                "id": [row_id(shard.uri, "<shard>")],
                "source_uri": [shard.uri],
                SHARD: [shard.shard_id],
                ORDINAL: pa.array([SHARD_MARKER_ORDINAL], pa.int64()),
                REJECT_STAGE: [source.label],
                REJECT_REASON: [SHARD_UNREADABLE],
                REJECT_DETAIL: [cause[-2000:]],
                FAILED: [True],
            }
        )
    )


def read_shards(
    batch: pa.Table,
    sources: tuple[PlannedStage, ...],
    counter=None,
    then: Callable[[pa.Table], pa.Table] | None = None,
) -> Iterator[pa.Table]:
    """Read the shards named in `batch`, passing each read batch through `then` (the stages fused with the
    read); a shard that raises yields what it read, then a failure marker."""
    counts = tally(counter)
    for item in batch.to_pylist():
        source = sources[item["source"]]
        shard = Shard(item["shard_id"], item["uri"], item["relative"])
        count = 0
        try:
            started = time.perf_counter()
            for table in source.stage.read_shard(shard):
                if table.num_rows:
                    positioned = _with_position(table, source, shard, count)
                    if counts is not None:
                        rejected = positioned.num_rows - count_active(positioned)
                        counts.add(source.label, positioned.num_rows, rejected, time.perf_counter() - started)
                    yield then(positioned) if then is not None else positioned
                    count += table.num_rows
                started = time.perf_counter()
        except Exception:  # noqa: BLE001 - one unreadable file must not stop the others
            marker = _shard_marker(source, shard, traceback.format_exc())
            yield then(marker) if then is not None else marker
        if counts is not None:
            counts.flush()


def _ensure_setup(stage: Stage) -> None:
    """Task-based stages set up once per copy a worker deserialised, never once per batch."""
    if not getattr(stage, "_setup_done", False):
        stage.setup()
        stage._setup_done = True


class _ActorStage:
    """Holds one stage per Ray actor: `setup` (a model load) runs once in the constructor."""

    def __init__(self, stage: Stage, label: str, counter):
        stage.setup()
        self.run = flushed(
            counter, counted(counter, label, lambda batch: run_on_active(batch, label, stage.process))
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.run(batch)


def written(
    tables: Iterator[pa.Table], write: Callable[[pa.Table], pa.Table], target_bytes: int
) -> Iterator[pa.Table]:
    """Commit rows as they stream out, in files of about `target_bytes`; yields the ledger records."""
    pending: list[pa.Table] = []
    size = 0
    for table in tables:
        pending.append(table)
        size += table.nbytes
        if size >= target_bytes:
            yield write(concat(pending))
            pending, size = [], 0
    if pending:
        yield write(concat(pending))


def _is_task_stage(planned: PlannedStage) -> bool:
    return not isinstance(planned.stage, GlobalStage) and not planned.stage.resources.actor_pool


def _task_runner(planned: PlannedStage, counter) -> Callable[[pa.Table], pa.Table]:
    stage, label = planned.stage, planned.label

    def process(batch: pa.Table) -> pa.Table:
        _ensure_setup(stage)
        return run_on_active(batch, label, stage.process)

    return counted(counter, label, process)


def fused(stages: list[PlannedStage], counter) -> Callable[[pa.Table], pa.Table]:
    """Consecutive task stages as one function: Ray Data then buffers and re-blocks once for all of them,
    not once per stage (its block shaping copied every image at each operator boundary)."""
    runners = [_task_runner(p, counter) for p in stages]

    def run(batch: pa.Table) -> pa.Table:
        for runner in runners:
            batch = runner(batch)
        return batch

    return _named(run, "+".join(p.label for p in stages))


def segments(steps: tuple[PlannedStage, ...]) -> list[list[PlannedStage]]:
    """Runs of consecutive task stages; every actor-pool or global stage stands alone."""
    groups: list[list[PlannedStage]] = []
    for planned in steps:
        if _is_task_stage(planned) and groups and _is_task_stage(groups[-1][0]):
            groups[-1].append(planned)
        else:
            groups.append([planned])
    return groups


def _actor_stage(ds, planned: PlannedStage, counter):
    from ray.data import ActorPoolStrategy

    stage, label = planned.stage, planned.label
    resources = stage.resources
    return ds.map_batches(
        type(label, (_ActorStage,), {}),
        fn_constructor_args=(stage, label, counter),
        compute=ActorPoolStrategy(size=resources.num_actors),
        batch_format="pyarrow",
        batch_size=None,
        num_cpus=resources.cpus,
        num_gpus=resources.gpus,
    )


def _global_stage(ds, planned: PlannedStage, counter):
    import ray

    stage: GlobalStage = planned.stage  # type: ignore[assignment]
    label = planned.label

    def prepare(batch: pa.Table) -> pa.Table:
        return run_on_active(batch, label, stage.prepare)

    def active_only(batch: pa.Table) -> pa.Table:
        return batch.filter(active_mask(batch))

    ds = ds.map_batches(
        _named(prepare, f"{label}:prepare"), batch_format="pyarrow", batch_size=None
    ).materialize()
    summary = stage.summarize(ds.map_batches(active_only, batch_format="pyarrow", batch_size=None))
    summary_ref = ray.put(summary)

    def apply(batch: pa.Table) -> pa.Table:
        resolved = ray.get(summary_ref)
        return run_on_active(batch, label, lambda active: stage.apply(active, resolved))

    return ds.map_batches(
        _named(flushed(counter, counted(counter, label, apply, not planned.companion)), f"{label}:apply"),
        batch_format="pyarrow",
        batch_size=None,
    )


def execute(plan: Plan, layout: OutputLayout, run_id: str | None = None, counter=None) -> RunOutput:
    """Run every stage on Ray and commit the blocks; returns the ledger records of the committed files."""
    import ray.data

    run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    started = time.perf_counter()
    items, source_of_shard, uri_of_shard = [], {}, {}
    for index, source in enumerate(plan.sources):
        stage: SourceStage = source.stage  # type: ignore[assignment]
        for shard in stage.list_shards():
            items.append(
                {"source": index, "shard_id": shard.shard_id, "uri": shard.uri, "relative": shard.relative}
            )
            source_of_shard[shard.shard_id] = source.label
            uri_of_shard[shard.shard_id] = shard.uri
    if not items:
        return RunOutput(run_id, [], source_of_shard, uri_of_shard, time.perf_counter() - started)

    sources = plan.sources
    groups = segments(plan.steps)
    with_read = fused(groups.pop(0), counter) if groups and _is_task_stage(groups[0][0]) else None
    schema = plan.schema

    def sink(batch: pa.Table) -> pa.Table:
        return write_block(batch, schema, layout, run_id)

    def read(batch: pa.Table) -> Iterator[pa.Table]:
        tables = read_shards(batch, sources, counter, with_read)
        # With nothing after the fused stages, rows are committed inside the read task, so image bytes
        # never pass through Ray's block buffers (a quarter of the run time on 2 cores, bench/).
        return tables if groups else written(tables, sink, FILE_TARGET_BYTES)

    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(_named(read, "read"), batch_format="pyarrow", batch_size=1)
    for group in groups:
        head = group[0]
        if isinstance(head.stage, GlobalStage):
            ds = _global_stage(ds, head, counter)
        elif head.stage.resources.actor_pool:
            ds = _actor_stage(ds, head, counter)
        else:
            cpus = max(p.stage.resources.cpus for p in group)
            run = flushed(counter, fused(group, counter))
            ds = ds.map_batches(run, batch_format="pyarrow", batch_size=None, num_cpus=cpus)
    records_ds = (
        ds.map_batches(_named(sink, "write"), batch_format="pyarrow", batch_size=None) if groups else ds
    )
    records: list[dict] = []
    for batch in records_ds.iter_batches(batch_format="pyarrow", batch_size=None):
        records.extend(batch.cast(RECORD_SCHEMA).to_pylist())
    return RunOutput(run_id, records, source_of_shard, uri_of_shard, time.perf_counter() - started)
