"""`dedup.minhash_caption` on img2dataset's 10,000 real captions with planted near-duplicates.

Truth is brute force: exact Jaccard of the shingle sets over all pairs (a sparse product). The LSH
must find at least 95% of the pairs at Jaccard >= threshold + 0.1, and the kept ids must not depend on
how the rows are split into blocks.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.sparse import csr_matrix

from pipeline.schema import REJECT_REASON
from stages.dedup.minhash_caption import CLUSTER, MinHashCaptionDedup, MinHashCaptionParams
from stages.dedup.minhash_signature import shingles

THRESHOLD, NGRAM = 0.7, 5


def _planted(captions: list[str], seed: int = 0) -> list[str]:
    """8% of the captions with 8+ words again, with one small edit each: a near-duplicate to find."""
    rng = np.random.default_rng(seed)
    long = [c for c in captions if len(c.split()) >= 8]
    variants = []
    for caption in rng.choice(long, size=len(captions) * 8 // 100, replace=False):
        words = caption.split()
        edit = rng.integers(3)
        if edit == 0:
            words[-1], words[-2] = words[-2], words[-1]
        elif edit == 1:
            words.append("photo")
        else:
            words[-1] = words[-1] + "s"
        variants.append(" ".join(words))
    return captions + variants


def _true_pairs(captions: list[str], minimum: float) -> set[tuple[int, int]]:
    sets = [set(shingles(c, NGRAM, "word")) for c in captions]
    vocabulary: dict[bytes, int] = {}
    rows, cols = [], []
    for i, s in enumerate(sets):
        for shingle in s:
            rows.append(i)
            cols.append(vocabulary.setdefault(shingle, len(vocabulary)))
    matrix = csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(sets), len(vocabulary)))
    inter = (matrix @ matrix.T).tocoo()
    sizes = np.array([len(s) for s in sets])
    upper = inter.row < inter.col
    i, j, n = inter.row[upper], inter.col[upper], inter.data[upper]
    jaccard = n / (sizes[i] + sizes[j] - n)
    return {(a, b) for a, b, x in zip(i.tolist(), j.tolist(), jaccard.tolist(), strict=True) if x >= minimum}


def _dedup(table: pa.Table, blocks: int) -> pa.Table:
    import ray.data

    stage = MinHashCaptionDedup(MinHashCaptionParams(threshold=THRESHOLD, ngram=NGRAM))
    prepared = stage.prepare(table)
    size = -(-prepared.num_rows // blocks)
    dataset = ray.data.from_arrow([prepared.slice(i, size) for i in range(0, prepared.num_rows, size)])
    return stage.apply(prepared, stage.summarize(dataset))


@pytest.fixture(scope="module")
def captions(realdata) -> list[str]:
    text = pq.read_table(realdata / "img2dataset" / "captions" / "test_10000.parquet")["TEXT"].to_pylist()
    return _planted([t or "" for t in text])


def test_recall_against_brute_force_jaccard(captions, ray_session):
    table = pa.table({"id": [f"c{i:06d}" for i in range(len(captions))], "caption": captions})
    out = _dedup(table, blocks=4)
    cluster = out[CLUSTER].to_pylist()
    high = _true_pairs(captions, THRESHOLD + 0.1)
    found = sum(1 for a, b in high if cluster[a] is not None and cluster[a] == cluster[b])
    recall = found / len(high)
    at_threshold = _true_pairs(captions, THRESHOLD)
    merged = {}
    for index, c in enumerate(cluster):
        if c is not None:
            merged.setdefault(c, []).append(index)
    same = {(a, b) for members in merged.values() for a in members for b in members if a < b}
    precision = len(same & at_threshold) / max(1, len(same))
    print(
        f"pairs J>={THRESHOLD + 0.1}: {len(high)}, recall {recall:.4f}; same-cluster pairs {len(same)}, "
        f"precision vs J>={THRESHOLD}: {precision:.4f}"
    )
    assert len(high) >= 400  # the planted variants (a word swap near the end can fall below J 0.8)
    assert recall >= 0.95
    assert precision >= 0.9
    rejected = sum(r == "duplicate:minhash_caption" for r in out[REJECT_REASON].to_pylist())
    assert rejected == sum(len(m) - 1 for m in merged.values())  # one keeper per cluster


def test_kept_ids_do_not_depend_on_blocks(captions, ray_session):
    table = pa.table({"id": [f"c{i:06d}" for i in range(len(captions))], "caption": captions})
    kept = []
    for blocks in (1, 4, 16):
        out = _dedup(table, blocks)
        kept.append(
            {
                i
                for i, r in zip(out["id"].to_pylist(), out[REJECT_REASON].to_pylist(), strict=True)
                if r is None
            }
        )
    assert kept[0] == kept[1] == kept[2]
