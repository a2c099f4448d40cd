"""Hash-partitioned exchange of Arrow tables between plain Ray tasks: the shuffle the dedup stages use.

Ray Data's groupby costs seconds per shuffle on a small cluster (measured for the duplicate graph), which
a handful of shuffles per stage cannot afford; here a shuffle is one split task per input table and one
task per output partition, and each task holds only its own inputs and outputs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _string_hashes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash per string from its length and its first and last 8 bytes, vectorised over the Arrow
    buffers: a Python call per value (xxhash) cost more than the rest of a shuffle of a million ids.
    Only the spread matters here (partitioning); ids that agree on both ends only unbalance partitions."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.large_string()) if array.type != pa.large_string() else array
    if len(array) == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset : array.offset + len(array) + 1]
    data = (
        np.frombuffer(array.buffers()[2], np.uint8)
        if array.buffers()[2] is not None
        else np.zeros(0, np.uint8)
    )
    data = np.concatenate([data[offsets[0] : offsets[-1]], np.zeros(1, np.uint8)])  # one pad byte
    starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    step = np.arange(8)
    head = starts[:, None] + step
    tail = ends[:, None] - 8 + step
    pad = len(data) - 1
    head = np.where(head < ends[:, None], head, pad)
    tail = np.where(tail >= starts[:, None], tail, pad)
    words = np.concatenate([data[head], data[tail]], axis=1).view(np.uint64)  # (n, 2)
    hashes = (ends - starts).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for column_index in range(2):
        hashes ^= words[:, column_index]
        hashes ^= hashes >> np.uint64(31)
        hashes *= np.uint64(0x94D049BB133111EB)
    return hashes ^ (hashes >> np.uint64(29))


def partition_ids(column: pa.ChunkedArray | pa.Array, parts: int) -> np.ndarray:
    """The partition of every value: a hash for strings, the value itself for unsigned integers."""
    if pa.types.is_unsigned_integer(column.type):
        return (column.to_numpy(zero_copy_only=False) % np.uint64(parts)).astype(np.int64)
    return (_string_hashes(column) % np.uint64(parts)).astype(np.int64)


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
