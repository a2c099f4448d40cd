"""The stage contract: what every stage declares and the lifecycle the executor drives.

Stage logic is pure over `pyarrow.Table` batches so unit tests call it with no Ray at all; the
executor adds routing of rejected rows, retries and distribution.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import ray.data


class StageKind(str, Enum):
    SOURCE = "source"
    MAP = "map"
    FILTER = "filter"
    GLOBAL = "global"


@dataclass(frozen=True)
class Column:
    """A column a stage requires or produces, with its Arrow type."""

    name: str
    type: pa.DataType


@dataclass(frozen=True)
class Resources:
    """What one worker of the stage needs; `actor_pool` stages hold a model loaded once per actor."""

    cpus: float = 1.0
    gpus: float = 0.0
    actor_pool: bool = False
    num_actors: int = 1


class Params(BaseModel):
    """Base of every stage's params: unknown keys and loose types are errors, not silent defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class Shard:
    """One input file of a source: the unit of reading, of output naming and of failure."""

    shard_id: str
    uri: str
    relative: str = ""  # the file's path within its source root: what ids hash, so they survive a move


@dataclass
class StageContext:
    """What a stage may know of the run: the manifest's directory (for relative paths) and seed."""

    base_dir: Path = field(default_factory=Path.cwd)
    seed: int = 0

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


class Stage:
    """Base class. Subclasses set the class attributes and override the hooks of their kind; a stage
    whose columns or resources depend on its params (a model's embedding size, a GPU) sets the same
    names on the instance in `__init__`.

    Filters set `reject_reason` (and optionally `reject_detail`, `reject_score`, `duplicate_of`) on rows
    they reject and keep their score columns; the executor routes those rows to the rejects.
    """

    name: ClassVar[str]
    kind: ClassVar[StageKind]
    Params: ClassVar[type[Params]] = Params
    requires: ClassVar[tuple[Column, ...]] = ()
    produces: ClassVar[tuple[Column, ...]] = ()
    resources: ClassVar[Resources] = Resources()

    def __init__(self, params: Params, context: StageContext | None = None):
        self.params = params
        self.context = context or StageContext()

    def setup(self) -> None:
        """Load heavy state once per worker (a model); the default needs none."""

    def process(self, table: pa.Table) -> pa.Table:
        """Map or filter one batch of active (not yet rejected) rows; row count and order are kept."""
        raise NotImplementedError(f"{self.name} does not implement process()")

    def teardown(self) -> None:
        """Release what `setup` took."""

    def check(self) -> list[str]:
        """Problems found before any work starts (missing paths, ...), as `param: message` strings."""
        return []

    def companion(self) -> GlobalStage | None:
        """A global step the planner runs right after this stage, under the same label: a threshold
        that needs the whole dataset's scores (a keep fraction) cannot be decided batch by batch."""
        return None


class SourceStage(Stage):
    """Emits rows: lists its shards at plan time, then reads each shard in a Ray task."""

    kind = StageKind.SOURCE

    def list_shards(self) -> list[Shard]:
        raise NotImplementedError

    def read_shard(self, shard: Shard) -> Iterator[pa.Table]:
        """Yield row batches of one shard; raise only when the shard itself is unreadable."""
        raise NotImplementedError


class GlobalStage(Stage):
    """A barrier over the whole dataset, in three steps so that only the middle one needs Ray.

    `prepare` adds key columns per batch, `summarize` aggregates the active rows of the whole dataset
    (distributed), and `apply` decides per batch from that summary.
    """

    kind = StageKind.GLOBAL

    def prepare(self, table: pa.Table) -> pa.Table:
        return table

    def summarize(self, dataset: ray.data.Dataset) -> pa.Table:
        raise NotImplementedError

    def apply(self, table: pa.Table, summary: pa.Table) -> pa.Table:
        raise NotImplementedError
