"""Hash-partitioned exchange of Arrow tables between plain Ray tasks: the shuffle the dedup stages use.

Ray Data's groupby costs seconds per shuffle on a small cluster (measured for the duplicate graph), which
a handful of shuffles per stage cannot afford; here a shuffle is one split task per input table and one
task per output partition, and each task holds only its own inputs and outputs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash


def partition_ids(column: pa.ChunkedArray | pa.Array, parts: int) -> np.ndarray:
    """The partition of every value: xxh32 for strings, the value itself for unsigned integers."""
    if pa.types.is_unsigned_integer(column.type):
        return (column.to_numpy(zero_copy_only=False) % np.uint64(parts)).astype(np.int64)
    return np.fromiter(
        (xxhash.xxh32_intdigest(value.encode()) % parts for value in column.to_pylist()),
        np.int64,
        count=len(column),
    )


def split(table: pa.Table, column: str, parts: int) -> list[pa.Table]:
    """`table` cut into `parts` tables by the hash of `column`, so equal keys meet in one task."""
    owner = partition_ids(table[column], parts)
    return [table.filter(pa.array(owner == p)) for p in range(parts)]


def concat(*tables: pa.Table) -> pa.Table:
    return pa.concat_tables(tables) if tables else pa.table({})


def exchange(refs: list, column: str, parts: int) -> list[list]:
    """Object refs of tables -> for each partition p, the refs of every input's piece p."""
    import ray

    if parts == 1:
        return [list(refs)]
    splitter = ray.remote(split).options(num_returns=parts)
    scattered = [splitter.remote(ref, column, parts) for ref in refs]
    return [[pieces[p] for pieces in scattered] for p in range(parts)]


def cluster_parts() -> int:
    """One partition per CPU of the cluster: enough parallelism, few small objects."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))
