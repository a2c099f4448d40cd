"""`dedup.minhash_caption`: near-duplicate captions across the whole dataset, by MinHash LSH.

Signatures are datasketch's (`minhash_signature`), computed per batch in `prepare`. The summary then runs
as plain Ray tasks over hash partitions (`exchange`): band buckets are shuffled so that each bucket is
handled in one place; each bucket yields candidate pairs (every member with the bucket's smallest id
and with its neighbour in id order, so a bucket of k rows costs O(k), not O(k^2)); candidates are kept
only when the estimated Jaccard of their signatures reaches the threshold; verified edges become
clusters through distributed connected components; each cluster keeps one row (`clusters`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from pipeline.registry import register
from pipeline.schema import fixed_width_column, fixed_width_rows, set_column
from pipeline.stage import Column, GlobalStage, Params
from stages.dedup.clusters import SCORE, apply_keepers, choose_keepers, score_rows
from stages.dedup.components import DEFAULT_LOCAL_LIMIT, EDGE_SCHEMA, connected_components
from stages.dedup.exchange import cluster_parts, concat, exchange
from stages.dedup.minhash_signature import MinHasher, band_keys, estimated_jaccard, lsh_params

SIGNATURE = "_minhash"
BANDS = "_minhash_bands"
CLUSTER = "caption_dup_cluster"
REASON = "duplicate:minhash_caption"


class MinHashCaptionParams(Params):
    threshold: float = Field(
        0.7, gt=0, lt=1, description="Jaccard similarity that makes two captions duplicates"
    )
    num_perm: int = Field(256, ge=16, le=1024, description="MinHash permutations")
    ngram: int = Field(5, ge=1, description="shingle length, in words or characters")
    unit: Literal["word", "char"] = Field("word", description="shingle unit")
    seed: int = Field(1, ge=0, description="permutation seed (datasketch's `seed`)")
    false_negative_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="weight of missed pairs in datasketch's band optimum (false positives: 1 - it)",
    )
    bands: int | None = Field(
        None, ge=1, description="LSH bands; default: datasketch's optimum for threshold"
    )
    rows: int | None = Field(None, ge=1, description="rows per band; set with `bands`")
    local_limit: int = Field(
        DEFAULT_LOCAL_LIMIT, ge=0, description="edges below which components run in one process"
    )

    @model_validator(mode="after")
    def _banding(self) -> MinHashCaptionParams:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands * self.rows}) exceeds num_perm ({self.num_perm})")
        return self


def _bucket_rows(table: pa.Table, bands: int) -> pa.Table:
    """One (bucket, id) row per band of every row that has a signature."""
    valid = table.filter(table[BANDS].is_valid())
    keys = fixed_width_rows(valid[BANDS], np.uint64)
    rows = np.repeat(np.arange(valid.num_rows), bands)
    return pa.table({"bucket": pa.array(keys.ravel(), pa.uint64()), "id": valid["id"].take(rows)})


def _candidates(*pieces: pa.Table) -> pa.Table:
    """Pairs within each bucket of two or more: every member with the smallest, and with its predecessor.

    Vectorised: singleton buckets (nearly all) are dropped with one count, ids become integer codes, and
    pairs are deduplicated as int64 keys; no Python loop over buckets."""
    rows = concat(*pieces)
    if rows.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    buckets = rows["bucket"].to_numpy()
    _, inverse, counts = np.unique(buckets, return_inverse=True, return_counts=True)
    rows = rows.filter(pa.array(counts[inverse] > 1))
    if rows.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    names, codes = np.unique(rows["id"].to_numpy(zero_copy_only=False), return_inverse=True)
    order = np.lexsort((codes, rows["bucket"].to_numpy()))
    bucket, code = rows["bucket"].to_numpy()[order], codes[order]
    new = np.r_[True, bucket[1:] != bucket[:-1]]
    first = code[np.maximum.accumulate(np.where(new, np.arange(len(code)), 0))]
    previous = np.r_[code[:1], code[:-1]]
    a = np.concatenate([first[~new], previous[~new]])
    b = np.concatenate([code[~new], code[~new]])
    distinct = a != b  # the same id twice in a bucket cannot happen, but a chain step may repeat `first`
    pairs = np.unique(a[distinct].astype(np.int64) * len(names) + b[distinct])
    return pa.table(
        {
            "a": pa.array(names[pairs // len(names)], pa.string()),
            "b": pa.array(names[pairs % len(names)], pa.string()),
        },
        schema=EDGE_SCHEMA,
    )


def _signatures(table: pa.Table) -> pa.Table:
    return table.select(["id", SIGNATURE]).filter(table[SIGNATURE].is_valid())


def _attach(signatures: pa.Table, side: str, *pieces: pa.Table) -> pa.Table:
    """Candidate pairs with the signature of their `side` end (pairs and signatures share a partition)."""
    pairs = concat(*pieces) if pieces else EDGE_SCHEMA.empty_table()
    position = pc.index_in(pairs[side], value_set=signatures["id"])
    return pairs.append_column(f"sig_{side}", signatures[SIGNATURE].take(position))


def _verified(signatures: pa.Table, threshold: float, *pieces: pa.Table) -> pa.Table:
    """Edges whose estimated Jaccard reaches the threshold."""
    pairs = _attach(signatures, "b", *pieces) if pieces else None
    if pairs is None or pairs.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    keep = estimated_jaccard(
        fixed_width_rows(pairs["sig_a"], np.uint32), fixed_width_rows(pairs["sig_b"], np.uint32)
    )
    return pairs.select(["a", "b"]).filter(pa.array(keep >= threshold))


@register
class MinHashCaptionDedup(GlobalStage):
    name = "dedup.minhash_caption"
    Params = MinHashCaptionParams
    requires = (Column("caption", pa.string()),)
    produces = (Column(CLUSTER, pa.string()),)

    def __init__(self, params: MinHashCaptionParams, context=None):
        super().__init__(params, context)
        self.bands, self.rows = (
            (params.bands, params.rows)
            if params.bands
            else lsh_params(
                params.threshold,
                params.num_perm,
                1 - params.false_negative_weight,
                params.false_negative_weight,
            )
        )
        self.hasher = MinHasher(params.num_perm, params.seed)

    def prepare(self, table: pa.Table) -> pa.Table:
        p = self.params
        signatures, has = self.hasher.signatures(table["caption"].to_pylist(), p.ngram, p.unit)
        keys = band_keys(signatures, self.bands, self.rows)
        table = set_column(table, SIGNATURE, fixed_width_column(signatures, has))
        return set_column(table, BANDS, fixed_width_column(keys, has))

    def summarize(self, dataset) -> pa.Table:
        import ray

        parts, p = cluster_parts(), self.params
        columns = ["id", SIGNATURE, BANDS] + ([SCORE] if SCORE in dataset.schema().names else [])
        refs = list(dataset.select_columns(columns).to_arrow_refs())
        scores = [ray.remote(score_rows).remote(ref) for ref in refs] if SCORE in columns else []
        merge = ray.remote(concat)
        buckets = [ray.remote(_bucket_rows).remote(ref, self.bands) for ref in refs]
        candidates = [
            ray.remote(_candidates).remote(*pieces) for pieces in exchange(buckets, "bucket", parts)
        ]
        signature_rows = [ray.remote(_signatures).remote(ref) for ref in refs]
        # Drop each list of refs once the tasks that read it are submitted: Ray frees an object when no
        # task or list holds it, which kept the object store from spilling signatures at 1M rows.
        del refs, buckets
        signatures = [merge.remote(*pieces) for pieces in exchange(signature_rows, "id", parts)]
        del signature_rows
        attach, verify = ray.remote(_attach), ray.remote(_verified)
        with_a = [
            attach.remote(signatures[i], "a", *pieces)
            for i, pieces in enumerate(exchange(candidates, "a", parts))
        ]
        del candidates
        edges = [
            verify.remote(signatures[i], p.threshold, *pieces)
            for i, pieces in enumerate(exchange(with_a, "b", parts))
        ]
        del with_a, signatures
        assignment = connected_components(edges, p.local_limit, parts)
        return choose_keepers(list(assignment.to_arrow_refs()), scores, parts)

    def apply(self, table: pa.Table, summary: pa.Table) -> pa.Table:
        detail = f"caption Jaccard >= {self.params.threshold} (MinHash estimate) with"
        table = table.drop_columns([c for c in (SIGNATURE, BANDS) if c in table.column_names])
        return apply_keepers(table, summary, CLUSTER, REASON, detail)
