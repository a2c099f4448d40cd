"""From duplicate clusters to verdicts: one keeper per cluster, every other member a reject.

Shared by the near-duplicate stages so they agree on the rule: the keeper is the member with the
highest `clip_score` when the rows have one (the best-aligned pair survives), then the smallest id, so
the choice never depends on block order or cluster size.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import DUPLICATE_OF, set_column
from stages.dedup.exchange import concat, exchange
from stages.filter.columns import reject_where

SCORE = "clip_score"
KEEPER_SCHEMA = pa.schema([("id", pa.string()), ("keeper", pa.string())])


def score_rows(table: pa.Table) -> pa.Table:
    """The (id, clip_score) columns `choose_keepers` joins in."""
    return table.select(["id", SCORE])


def _with_scores(assignment: pa.Table, *score_pieces: pa.Table) -> pa.Table:
    """(id, root) joined with the ids' scores (both partitioned by id); NaN where a row has none."""
    scores = concat(*score_pieces)
    lookup = (
        dict(zip(scores["id"].to_pylist(), scores[SCORE].to_pylist(), strict=True)) if scores.num_rows else {}
    )
    values = [lookup.get(i) for i in assignment["id"].to_pylist()]
    return assignment.append_column(
        SCORE, pa.array([np.nan if v is None else v for v in values], pa.float64())
    )


def _keepers(key: str, *pieces: pa.Table) -> pa.Table:
    """Per cluster `key` (all its members are in this partition): the keeper of every member of a
    cluster of two or more."""
    members = concat(*pieces)
    if members.num_rows == 0:
        return KEEPER_SCHEMA.empty_table()
    if SCORE in members.column_names:
        score = np.nan_to_num(members[SCORE].to_numpy(zero_copy_only=False).astype(np.float64), nan=-np.inf)
    else:
        score = np.full(members.num_rows, -np.inf)
    best: dict[object, tuple[float, str]] = {}
    size: dict[object, int] = {}
    keys = members[key].to_pylist()
    for cluster, member, value in zip(keys, members["id"].to_pylist(), score.tolist(), strict=True):
        size[cluster] = size.get(cluster, 0) + 1
        current = best.get(cluster)
        if current is None or (-value, member) < (-current[0], current[1]):
            best[cluster] = (value, member)
    grouped = pa.array([size[k] > 1 for k in keys])
    keepers = pa.array([best[k][1] for k in keys], pa.string())
    return pa.table({"id": members["id"], "keeper": keepers}, schema=KEEPER_SCHEMA).filter(grouped)


def keepers_by_key(refs: list, key: str, parts: int) -> pa.Table:
    """(id, keeper) for rows sharing `key` with another row; `refs` hold (key, id[, clip_score]) tables."""
    import ray

    run = ray.remote(_keepers)
    found = ray.get([run.remote(key, *pieces) for pieces in exchange(refs, key, parts)])
    return pa.concat_tables([KEEPER_SCHEMA.empty_table(), *found])


def choose_keepers(assignment_refs: list, score_refs: list, parts: int) -> pa.Table:
    """(id, keeper) for every row in a cluster of two or more; `score_refs` hold (id, clip_score) tables."""
    import ray

    merge = ray.remote(concat)
    join = ray.remote(_with_scores)
    by_id = exchange(assignment_refs, "id", parts)
    scores_by_id = exchange(score_refs, "id", parts) if score_refs else [[] for _ in range(parts)]
    scored = [join.remote(merge.remote(*by_id[p]), *scores_by_id[p]) for p in range(parts)]
    return keepers_by_key(scored, "root", parts)


def apply_keepers(
    table: pa.Table, keepers: pa.Table, cluster_column: str, reason: str, detail: str
) -> pa.Table:
    """Mark cluster members: `cluster_column` = keeper id on every member, losers rejected with
    `duplicate_of` = the keeper."""
    position = pc.index_in(table["id"], value_set=keepers["id"])
    keeper = pc.take(keepers["keeper"], position)
    table = set_column(table, cluster_column, keeper, pa.string())
    loser = pc.and_(pc.is_valid(keeper), pc.not_equal(keeper, table["id"]))
    table = reject_where(table, loser, reason, pc.binary_join_element_wise(detail, keeper, " "))
    previous = (
        table[DUPLICATE_OF] if DUPLICATE_OF in table.column_names else pa.nulls(table.num_rows, pa.string())
    )
    return set_column(table, DUPLICATE_OF, pc.if_else(loser, keeper, previous.cast(pa.string())), pa.string())
