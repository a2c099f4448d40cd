"""`filter.clip_score`: CLIP image-text cosine for every pair, as LAION (absolute) and DataComp (top share)
filter on it.

Runs as a Ray actor pool: each actor loads the model once and scores batches with the model's own
preprocessing transform and tokenizer (captions past the context are truncated, not rejected). The next
sub-batch is decoded and preprocessed in a thread while the model runs on the current one. `clip_score`
is kept on every scored row, and on the rejects as their `score`, so thresholds can be re-tuned in
DuckDB. A keep fraction is a global quantile, decided by the `filter.top_fraction` companion step.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline.registry import register
from pipeline.schema import MEDIA, REJECT_DETAIL, REJECT_REASON, first_image, fixed_width_column, set_column
from pipeline.stage import Column, Params, Resources, Stage, StageContext, StageKind
from stages.clip.model import CHECKPOINT_SUFFIXES, ClipLoadError, load_clip, model_config, model_name
from stages.filter.columns import reject_where
from stages.filter.top_fraction import TopFraction, TopFractionParams

SCORE = "clip_score"
EMBEDDING = "image_embedding"


class ClipScoreParams(Params):
    model: str = Field(description="open_clip model name, or the path of an open_clip model config JSON")
    pretrained: str = Field(
        description="pretrained tag (e.g. laion2b_s34b_b79k, must be cached), checkpoint path, or `random`"
    )
    cache_dir: str | None = Field(None, description="where pretrained tags are cached")
    batch_size: int = Field(64, ge=1, description="pairs per forward pass")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when the actor has a GPU")
    num_actors: int = Field(1, ge=1, description="model replicas (Ray actors)")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs Ray reserves per actor")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs Ray gives each actor")
    threads: int | None = Field(None, ge=1, description="torch threads per actor; default: cores / actors")
    min_score: float | None = Field(None, ge=-1, le=1, description="reject cosine below this (LAION: 0.28)")
    keep_top_fraction: float | None = Field(
        None, gt=0, le=1, description="keep this share of the whole dataset's scored rows (DataComp: 0.3)"
    )
    store_embedding: bool = Field(False, description="write the normalised image embedding (float16)")
    jpeg_draft: bool = Field(
        True, description="decode JPEGs at the smallest DCT scale still at least the model's input size"
    )


def embedding_type(dim: int) -> pa.DataType:
    """float16 little-endian in fixed-size binary: an order of magnitude faster for pyarrow to write than
    a float16 list (BENCHMARKS.md); read back with numpy.frombuffer(value, '<f2')."""
    return pa.binary(2 * dim)


@register
class ClipScore(Stage):
    name = "filter.clip_score"
    kind = StageKind.FILTER
    Params = ClipScoreParams
    requires = (Column("images", pa.list_(MEDIA)), Column("caption", pa.string()))
    produces = (Column(SCORE, pa.float32()),)
    resources = Resources(actor_pool=True)

    def __init__(self, params: ClipScoreParams, context: StageContext | None = None):
        super().__init__(params, context)
        self.model_ref = self._local(params.model, (".json",))
        self.pretrained_ref = self._local(params.pretrained, CHECKPOINT_SUFFIXES)
        self.resources = Resources(
            cpus=params.cpus_per_actor,
            gpus=params.gpus_per_actor,
            actor_pool=True,
            num_actors=params.num_actors,
        )
        if params.store_embedding:
            self.produces = (*self.produces, Column(EMBEDDING, embedding_type(self._embed_dim())))

    def _local(self, value: str, suffixes: tuple[str, ...]) -> str:
        """Paths in a manifest are relative to it; names and tags are left alone."""
        return str(self.context.resolve(value)) if value.endswith(suffixes) or os.sep in value else value

    def _embed_dim(self) -> int:
        try:
            return model_config(model_name(self.model_ref))["embed_dim"]
        except ClipLoadError:
            return 0  # reported by check()

    def check(self) -> list[str]:
        """Load the model once on the driver: an unknown name, a missing file or an uncached tag must
        stop the run before any work starts, not crash the first actor."""
        try:
            load_clip(self.model_ref, self.pretrained_ref, self.params.cache_dir, "cpu")
        except ClipLoadError as exc:
            return [f"model: {exc}"]
        return []

    def companion(self) -> TopFraction | None:
        if self.params.keep_top_fraction is None:
            return None
        params = TopFractionParams(
            column=SCORE,
            keep_top_fraction=self.params.keep_top_fraction,
            reason="clip_score_not_in_top_fraction",
        )
        return TopFraction(params, self.context)

    def setup(self) -> None:
        # torch is imported by the actors that score, not by every worker that imports the stages
        from stages.clip.scorer import ClipScorer

        threads = self.params.threads or max(1, (os.cpu_count() or 1) // self.params.num_actors)
        self.scorer = ClipScorer(
            self.model_ref,
            self.pretrained_ref,
            self.params.cache_dir,
            self.params.device,
            self.params.batch_size,
            threads,
            self.params.jpeg_draft,
        )

    def teardown(self) -> None:
        self.scorer.close()

    def process(self, table: pa.Table) -> pa.Table:
        scores, embeddings, errors = self.scorer.score(
            first_image(table["images"]), table["caption"].to_pylist()
        )
        scored = ~np.isnan(scores)
        table = set_column(table, SCORE, pa.array(scores, pa.float32(), mask=~scored))
        if self.params.store_embedding:
            table = set_column(table, EMBEDDING, fixed_width_column(embeddings.astype("<f2"), scored))
        if errors:
            reasons = (
                table[REJECT_REASON].to_pylist()
                if REJECT_REASON in table.column_names
                else [None] * len(scores)
            )
            details = (
                table[REJECT_DETAIL].to_pylist()
                if REJECT_DETAIL in table.column_names
                else [None] * len(scores)
            )
            for row, exc in errors.items():
                reasons[row], details[row] = f"error:{exc.code}", exc.detail[:500]
            table = set_column(table, REJECT_REASON, pa.array(reasons, pa.string()))
            table = set_column(table, REJECT_DETAIL, pa.array(details, pa.string()))
        if self.params.min_score is not None:
            score = table[SCORE]
            below = pc.less(score, self.params.min_score)
            detail = pc.binary_join_element_wise(
                pc.cast(pc.round(pc.cast(score, pa.float64()), 4), pa.string()),
                f"below min_score {self.params.min_score}",
                " ",
            )
            table = reject_where(table, below, "clip_score_below_min", detail, score)
        return table
