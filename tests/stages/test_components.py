"""Connected components on Ray: the distributed star rounds agree with scipy on random graphs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from stages.dedup.components import connected_components


def _random_edges(seed: int, nodes: int, edges: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, nodes, edges), rng.integers(0, nodes, edges)
    keep = a != b
    return pa.table({"a": [f"n{x:04d}" for x in a[keep]], "b": [f"n{x:04d}" for x in b[keep]]})


def _expected(edges: pa.Table) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(edges["a"].to_pylist(), edges["b"].to_pylist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


@pytest.mark.parametrize(("seed", "nodes", "edges"), [(0, 300, 200), (1, 200, 400), (2, 50, 30)])
@pytest.mark.parametrize("local_limit", [0, 10_000])
def test_components_match_union_find(ray_session, seed, nodes, edges, local_limit):
    import ray.data

    table = _random_edges(seed, nodes, edges)
    blocks = [table.slice(i, 37) for i in range(0, table.num_rows, 37)]
    result = connected_components(ray.data.from_arrow(blocks), local_limit=local_limit).take_all()
    assert {r["id"]: r["root"] for r in result} == _expected(table)
    assert len(result) == len({r["id"] for r in result})


def test_a_long_chain_is_one_component(ray_session):
    import ray.data

    ids = [f"c{i:03d}" for i in range(64)]
    chain = pa.table({"a": ids[1:], "b": ids[:-1]})
    result = connected_components(ray.data.from_arrow(chain), local_limit=0).take_all()
    assert {r["root"] for r in result} == {"c000"} and len(result) == 64
