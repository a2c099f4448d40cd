"""Parquet files of image-caption pairs: images as bytes, as paths, or as HF `struct<bytes, path>`.

Read batch by batch with pyarrow; a file that cannot be opened (truncated, not Parquet) fails its shard,
which the run lists with its cause while the other shards complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from pipeline.registry import register
from pipeline.stage import Shard
from stages.ingest.caption_rows import FileSource, FileSourceParams, Sample, decode_caption, read_image_file


class ParquetSourceParams(FileSourceParams):
    image_column: str = Field("image", description="binary bytes, a path string, or struct<bytes, path>")
    caption_column: str = Field("caption", description="string (or binary UTF-8) caption")
    key_column: str | None = Field(
        None, description="unique key per row; default: the row number in the file"
    )
    url_column: str | None = Field(None, description="optional source URL column")


def _image_of(value, base: Path) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, path, reject reason) for one cell of the image column, whatever its layout."""
    if value is None:
        return None, None, "missing_image"
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data is not None:
            return data, path, None
        value = path
        if value is None:
            return None, None, "missing_image"
    if isinstance(value, bytes):
        return value, None, None
    data, reason = read_image_file(base / value)
    return data, str(value), reason


@register
class ParquetSource(FileSource):
    """`ingest.parquet`: one shard per .parquet file."""

    name = "ingest.parquet"
    Params = ParquetSourceParams
    suffixes = (".parquet",)

    def read_shard(self, shard: Shard) -> Iterator[pa.Table]:
        p = self.params
        parquet = pq.ParquetFile(shard.uri)
        names = parquet.schema_arrow.names
        missing = [
            c for c in (p.image_column, p.caption_column, p.key_column, p.url_column) if c and c not in names
        ]
        if missing:
            raise ValueError(f"{shard.uri}: missing column(s) {missing}; the file has {names}")
        columns = [c for c in (p.image_column, p.caption_column, p.key_column, p.url_column) if c]
        base = Path(shard.uri).parent
        row = 0
        for batch in parquet.iter_batches(batch_size=p.batch_rows, columns=list(dict.fromkeys(columns))):
            data = batch.to_pydict()
            samples = []
            for i in range(batch.num_rows):
                key = str(data[p.key_column][i]) if p.key_column else f"{row + i:09d}"
                image, path, reason = _image_of(data[p.image_column][i], base)
                caption = data[p.caption_column][i]
                if isinstance(caption, bytes):
                    caption, caption_reason = decode_caption(caption)
                    reason = reason or caption_reason
                url = data[p.url_column][i] if p.url_column else None
                samples.append(Sample(key, image, path, caption, url, reason))
            row += batch.num_rows
            yield self.to_table(shard, samples)
