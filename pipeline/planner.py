"""The planner: checks the whole manifest before any work starts and orders the stages for the executor.

Column contracts are checked across stages (every required column is produced upstream with the same
type), sources come first, paths exist and the output is writable.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipeline.errors import ManifestError
from pipeline.manifest import Manifest, StageSpec
from pipeline.schema import output_schema
from pipeline.stage import GlobalStage, SourceStage, Stage


@dataclass(frozen=True)
class PlannedStage:
    """A built stage and its label: the stage name, suffixed `#index` where a manifest repeats it."""

    spec: StageSpec
    stage: Stage
    label: str
    companion: bool = False  # a global step the stage under this label asked for (see Stage.companion)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Plan:
    manifest: Manifest
    sources: tuple[PlannedStage, ...]
    steps: tuple[PlannedStage, ...]
    output_dir: Path
    schema: pa.Schema

    @property
    def labels(self) -> list[str]:
        """Every label once, in order: a companion step reports under its stage's label."""
        return list(dict.fromkeys(p.label for p in self.sources + self.steps))


def _check_columns(planned: list[PlannedStage]) -> list[str]:
    problems: list[str] = []
    available: dict[str, pa.DataType] = {}
    for item in planned:
        for column in item.stage.requires:
            have = available.get(column.name)
            if have is None:
                problems.append(
                    f"{item.spec.key} ({item.name}): requires column {column.name!r}, "
                    "which no earlier stage produces"
                )
            elif have != column.type:
                problems.append(
                    f"{item.spec.key} ({item.name}): requires {column.name!r} as {column.type}, "
                    f"upstream produces {have}"
                )
        for column in item.stage.produces:
            available[column.name] = column.type
    return problems


def _check_output(output_dir: Path) -> list[str]:
    existing = output_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return [f"output: {existing} exists and is not a directory"]
    if not os.access(existing, os.W_OK):
        return [f"output: {existing} is not writable"]
    return []


def _companions(planned: PlannedStage) -> tuple[PlannedStage, ...]:
    companion = planned.stage.companion()
    return (
        () if companion is None else (PlannedStage(planned.spec, companion, planned.label, companion=True),)
    )


def build_plan(manifest: Manifest, output: str | None = None) -> Plan:
    """Instantiate every stage and check the manifest as a whole; raises ManifestError with every problem."""
    context = manifest.context()
    problems: list[str] = []
    name_counts = Counter(spec.name for spec in manifest.stages)
    planned = [
        PlannedStage(
            spec,
            spec.build(context),
            spec.name if name_counts[spec.name] == 1 else f"{spec.name}#{spec.index}",
        )
        for spec in manifest.stages
    ]

    sources = [p for p in planned if isinstance(p.stage, SourceStage)]
    steps = [step for p in planned if not isinstance(p.stage, SourceStage) for step in (p, *_companions(p))]
    if not sources:
        problems.append("stages: the first stage must be a source (ingest.* or synth.*)")
    last_source = max((i for i, p in enumerate(planned) if isinstance(p.stage, SourceStage)), default=-1)
    for p in planned[: last_source + 1]:
        if not isinstance(p.stage, SourceStage):
            problems.append(f"{p.spec.key} ({p.name}): sources must come before every other stage")
    for p in planned:
        problems.extend(f"{p.spec.key}.{message}" for message in p.stage.check())
    problems.extend(_check_columns(planned))

    output_value = output or manifest.output
    if output_value is None:
        problems.append("output: no output directory; set `output:` in the manifest or pass --output")
        output_dir = Path()
    else:
        output_dir = Path(output_value) if output else manifest.context().resolve(output_value)
        output_dir = output_dir.resolve()
        problems.extend(_check_output(output_dir))
    if problems:
        raise ManifestError(problems)

    produced = [pa.field(c.name, c.type) for p in planned for c in p.stage.produces]
    return Plan(
        manifest=manifest,
        sources=tuple(sources),
        steps=tuple(steps),
        output_dir=output_dir,
        schema=output_schema(produced),
    )


def describe_stage(stage: Stage) -> dict:
    """A stage's contract as plain data, for `pipeline plan`."""
    return {
        "kind": stage.kind.value,
        "params": stage.params.model_dump(mode="json"),
        "requires": {c.name: str(c.type) for c in stage.requires},
        "produces": {c.name: str(c.type) for c in stage.produces},
        "resources": {
            "cpus": stage.resources.cpus,
            "gpus": stage.resources.gpus,
            "actor_pool": stage.resources.actor_pool,
            "num_actors": stage.resources.num_actors,
        },
        "global_barrier": isinstance(stage, GlobalStage),
    }
