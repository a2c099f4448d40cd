"""Connected components of a duplicate graph on Ray, without gathering all edges into one process.

Near-duplicate methods emit candidate edges between row ids; a duplicate cluster is a connected
component. The components are found with the alternating large-star / small-star rounds of Kiveris et
al. ("Connected Components in MapReduce and Beyond", 2014). Each step hash-partitions the edges by node
with plain Ray tasks (Ray Data's groupby cost seconds per shuffle here, for a few hundred edges), so a
task holds only the edges of its partition. Every round shrinks the graph towards stars around each
component's smallest id; once few enough edges remain (`local_limit`), the rest runs in one process with
scipy, which then holds at most that many edges.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from stages.dedup.exchange import cluster_parts, exchange

EDGE_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string())])
ASSIGNMENT_SCHEMA = pa.schema([("id", pa.string()), ("root", pa.string())])
DEFAULT_LOCAL_LIMIT = 1_000_000  # edges: about 100 MB of ids in one process
MAX_ROUNDS = 100


def edge_table(pairs: set[tuple[str, str]]) -> pa.Table:
    """Edges (a, b) from a set of id pairs."""
    return pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}, schema=EDGE_SCHEMA)


def _oriented(edges: pa.Table, both: bool) -> pa.Table:
    """Both directions (large-star needs whole neighbourhoods), or larger end first (small-star)."""
    if both:
        return pa.concat_tables([edges, pa.table({"a": edges["b"], "b": edges["a"]}, schema=EDGE_SCHEMA)])
    swap = pc.less(edges["a"], edges["b"])
    return pa.table(
        {"a": pc.if_else(swap, edges["b"], edges["a"]), "b": pc.if_else(swap, edges["a"], edges["b"])},
        schema=EDGE_SCHEMA,
    )


def _neighbourhoods(edges: pa.Table) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for a, b in zip(edges["a"].to_pylist(), edges["b"].to_pylist(), strict=True):
        groups[a].add(b)
    return groups


def _large_star(*pieces: pa.Table) -> pa.Table:
    """Each node links its larger neighbours to the smallest id of its neighbourhood (itself included)."""
    out = set()
    for node, neighbours in _neighbourhoods(_concat(*pieces)).items():
        smallest = min(min(neighbours), node)
        out |= {(v, smallest) for v in neighbours if v > node}
    return edge_table(out)


def _small_star(*pieces: pa.Table) -> pa.Table:
    """Each node, seeing only its smaller neighbours, links itself and them to the smallest of them."""
    out = set()
    for node, neighbours in _neighbourhoods(_concat(*pieces)).items():
        smallest = min(neighbours)
        out |= {(v, smallest) for v in neighbours | {node} if v != smallest}
    return edge_table(out)


def _fingerprint(edges: pa.Table) -> tuple[int, int]:
    """Edge count and an order-free checksum: equal between rounds means the graph stopped changing."""
    joined = pc.binary_join_element_wise(edges["a"], edges["b"], "\x00").to_pylist()
    return edges.num_rows, sum(xxhash.xxh32_intdigest(text.encode()) for text in joined)


def _concat(*tables: pa.Table) -> pa.Table:
    return pa.concat_tables([EDGE_SCHEMA.empty_table(), *tables])


def _local_components(edges: pa.Table) -> pa.Table:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if edges.num_rows == 0:
        return ASSIGNMENT_SCHEMA.empty_table()
    ends = np.concatenate(
        [edges["a"].to_numpy(zero_copy_only=False), edges["b"].to_numpy(zero_copy_only=False)]
    )
    ids, inverse = np.unique(ends, return_inverse=True)
    n, m = len(ids), edges.num_rows
    graph = coo_matrix((np.ones(m, np.int8), (inverse[:m], inverse[m:])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1, n, np.int64)  # ids are sorted: the first index is the smallest id
    np.minimum.at(first, labels, np.arange(n))
    return pa.table({"id": list(ids), "root": list(ids[first[labels]])}, schema=ASSIGNMENT_SCHEMA)


def _with_roots(edges: pa.Table) -> pa.Table:
    """After convergence every edge joins a node to its root; add each root as its own root."""
    roots = pc.unique(edges["b"])
    return _concat(edges, pa.table({"a": roots, "b": roots}, schema=EDGE_SCHEMA))


def _assignment(*pieces: pa.Table) -> pa.Table:
    """One row per id: pieces of one partition may repeat an edge that two tasks both emitted."""
    edges = _concat(*pieces)
    pairs = dict(zip(edges["a"].to_pylist(), edges["b"].to_pylist(), strict=True))
    return pa.table({"id": list(pairs), "root": list(pairs.values())}, schema=ASSIGNMENT_SCHEMA)


def connected_components(edges, local_limit: int = DEFAULT_LOCAL_LIMIT, parts: int | None = None):
    """`edges` (a Ray Dataset, or object refs of tables, with string columns a, b) -> a Dataset of
    (id, root) for every node on an edge, `root` being the smallest id of its component."""
    import ray
    import ray.data

    parts = parts or cluster_parts()
    large, small = ray.remote(_large_star), ray.remote(_small_star)
    orient, merge = ray.remote(_oriented), ray.remote(_concat)

    def shuffled(refs: list, both: bool) -> list[list]:
        return exchange([orient.remote(ref, both) for ref in refs], "a", parts)

    refs = list(edges.to_arrow_refs()) if hasattr(edges, "to_arrow_refs") else list(edges)
    refs = [merge.remote(*pieces) for pieces in shuffled(refs, both=False)]
    previous = None
    for _ in range(MAX_ROUNDS):
        prints = ray.get([ray.remote(_fingerprint).remote(ref) for ref in refs])
        state = (sum(c for c, _ in prints), sum(s for _, s in prints))
        if state[0] <= local_limit:
            return ray.data.from_arrow(_local_components(_concat(*ray.get(refs))))
        if state == previous:
            rows = [ray.remote(_with_roots).remote(ref) for ref in refs]
            assign = ray.remote(_assignment)
            return ray.data.from_arrow_refs([assign.remote(*pieces) for pieces in shuffled(rows, both=False)])
        previous = state
        refs = [large.remote(*pieces) for pieces in shuffled(refs, both=True)]
        refs = [small.remote(*pieces) for pieces in shuffled(refs, both=False)]
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
