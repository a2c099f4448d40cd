"""The row schema shared by curated and synthetic rows, and the columns the executor uses internally.

Documented in the README; bump `SCHEMA_VERSION` when a core column changes meaning or type.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 1

MEDIA = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

CORE_COLUMNS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("source_uri", pa.string()),
    pa.field("source_key", pa.string()),
    pa.field("task", pa.string()),
    pa.field("url", pa.string()),
    pa.field("images", pa.list_(MEDIA)),
    pa.field("caption", pa.string()),
    pa.field("messages", pa.list_(MESSAGE)),
)

# Carried between stages, never written as such: routing state and the output position of a row.
SHARD = "_shard"
ORDINAL = "_ordinal"
REJECT_STAGE = "reject_stage"
REJECT_REASON = "reject_reason"
REJECT_DETAIL = "reject_detail"
REJECT_SCORE = "reject_score"
DUPLICATE_OF = "duplicate_of"
FAILED = "_failed"

ROUTING_COLUMNS: tuple[pa.Field, ...] = (
    pa.field(SHARD, pa.string()),
    pa.field(ORDINAL, pa.int64()),
    pa.field(REJECT_STAGE, pa.string()),
    pa.field(REJECT_REASON, pa.string()),
    pa.field(REJECT_DETAIL, pa.string()),
    pa.field(REJECT_SCORE, pa.float64()),
    pa.field(DUPLICATE_OF, pa.string()),
    pa.field(FAILED, pa.bool_()),
)
ROUTING_NAMES = frozenset(f.name for f in ROUTING_COLUMNS)

# Heavy columns dropped from a row as soon as it is rejected: the rejects never carry media.
MEDIA_COLUMNS = ("images", "video")

REJECT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("source_key", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("duplicate_of", pa.string()),
    ]
)


def set_column(
    table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray, typ: pa.DataType | None = None
) -> pa.Table:
    """Add or replace column `name` (cast to `typ` when given)."""
    values = values.cast(typ) if typ is not None else values
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), pa.field(name, values.type), values)
    return table.append_column(pa.field(name, values.type), values)


def media_list(data: list[bytes | None], paths: list[str | None]) -> pa.ListArray:
    """One-item `images` lists built column-wise; a row with neither bytes nor path gets a null list."""
    n = len(data)
    items = pa.StructArray.from_arrays(
        [pa.array(data, pa.binary()), pa.array(paths, pa.string())], fields=list(MEDIA)
    )
    missing = pa.array([d is None and p is None for d, p in zip(data, paths, strict=True)], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), items, mask=missing)


def caption_messages(captions: list[str | None]) -> pa.ListArray:
    """`[user: "<image>", assistant: caption]` per row, built column-wise; null where the caption is."""
    n = len(captions)
    roles = pa.array(["user", "assistant"] * n, pa.string())
    contents = pa.array([part for c in captions for part in ("<image>", c)], pa.string())
    items = pa.StructArray.from_arrays([roles, contents], fields=list(MESSAGE))
    missing = pa.array([c is None for c in captions], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), items, mask=missing)


def first_image(images: pa.ChunkedArray | pa.Array, field: str = "bytes") -> list:
    """`field` (bytes or path) of each row's first image, copied once (no Python dicts, no intermediate
    array of the whole struct)."""
    chunks = images.chunks if isinstance(images, pa.ChunkedArray) else [images]
    out: list = []
    for chunk in chunks:
        offsets = chunk.offsets.to_numpy()
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        base = int(offsets[0])
        values = chunk.values.slice(base, int(offsets[-1]) - base).field(field).to_pylist()
        for i in range(len(chunk)):
            out.append(values[offsets[i] - base] if valid[i] and offsets[i + 1] > offsets[i] else None)
    return out


def output_schema(produced: list[pa.Field]) -> pa.Schema:
    """The kept-row schema: core columns, then what stages add, in manifest order."""
    fields = list(CORE_COLUMNS)
    names = {f.name for f in fields}
    for f in produced:
        if f.name not in names and f.name not in ROUTING_NAMES:
            fields.append(f)
            names.add(f.name)
    return pa.schema(fields)


def row_id(*parts: str) -> str:
    """A stable sample id: the hash of its source URI and key, independent of workers and order."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=12).hexdigest()


def fixed_width_column(rows: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Each row of a 2-D array as one fixed-size binary value; null where `valid` is false."""
    validity = pa.array(valid, pa.bool_()).buffers()[1]
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(rows.shape[1] * rows.itemsize),
        len(valid),
        [validity, pa.py_buffer(np.ascontiguousarray(rows).tobytes())],
        null_count=int(len(valid) - np.count_nonzero(valid)),
    )


def fixed_width_rows(column: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    """A fixed-size binary column as a 2-D numpy array, straight from its data buffer (no nulls)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = array.type.byte_width
    data = np.frombuffer(array.buffers()[1], np.uint8)[
        array.offset * width : (array.offset + len(array)) * width
    ]
    return data.view(dtype).reshape(len(array), -1)
