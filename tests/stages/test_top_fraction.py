"""`filter.top_fraction`: a global keep share, exact to the row whatever the blocks, with ties by id."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline.schema import REJECT_REASON
from stages.filter.top_fraction import TopFraction, TopFractionParams


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(0, 1, n), 2).astype(np.float32)  # rounding makes many ties
    return pa.table({"id": [f"{i:05d}" for i in rng.permutation(n)], "score": pa.array(scores, pa.float32())})


def _kept(table: pa.Table, fraction: float, blocks: int, ray_session) -> list[str]:
    import ray.data

    stage = TopFraction(TopFractionParams(column="score", keep_top_fraction=fraction))
    step = max(1, table.num_rows // blocks)
    dataset = ray.data.from_arrow([table.slice(i, step) for i in range(0, table.num_rows, step)])
    summary = stage.summarize(dataset)
    out = stage.apply(table, summary)
    reasons = out[REJECT_REASON].to_pylist()
    return sorted(i for i, r in zip(out["id"].to_pylist(), reasons, strict=True) if r is None)


@pytest.mark.parametrize("fraction", [0.3, 0.05, 1.0, 0.001])
def test_keeps_exactly_the_fraction_whatever_the_blocks(fraction, ray_session):
    table = _table(997, seed=1)
    expected = round(fraction * 997)
    results = {blocks: _kept(table, fraction, blocks, ray_session) for blocks in (1, 7, 40)}
    assert all(len(kept) == expected for kept in results.values())
    assert results[1] == results[7] == results[40]  # same rows, not only the same count


def test_keeps_the_best_scores_and_breaks_ties_by_smallest_id(ray_session):
    table = pa.table(
        {"id": ["e", "d", "c", "b", "a"], "score": pa.array([0.9, 0.5, 0.5, 0.5, 0.1], pa.float32())}
    )
    assert _kept(table, 0.6, 2, ray_session) == ["b", "c", "e"]  # 3 rows: 0.9, then two of the 0.5 ties


def test_rejects_carry_reason_score_and_threshold(ray_session):
    table = pa.table({"id": ["a", "b", "c", "d"], "score": pa.array([0.1, 0.2, 0.3, 0.4], pa.float32())})
    import ray.data

    stage = TopFraction(
        TopFractionParams(column="score", keep_top_fraction=0.5, reason="clip_score_not_in_top_fraction")
    )
    out = stage.apply(table, stage.summarize(ray.data.from_arrow(table)))
    assert out[REJECT_REASON].to_pylist() == ["clip_score_not_in_top_fraction"] * 2 + [None, None]
    assert out["reject_score"].to_pylist()[:2] == pytest.approx([0.1, 0.2])
    assert "threshold 0.3000" in out["reject_detail"][0].as_py()
