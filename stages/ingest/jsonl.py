"""JSON Lines with image paths: one object per line, paths relative to the file (or `image_root`).

A line that is not UTF-8 or not a JSON object becomes a reject row keyed by its line number; it never
stops the shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from pipeline.registry import register
from pipeline.stage import Shard
from stages.ingest.caption_rows import FileSource, FileSourceParams, Sample, read_image_file


class JsonlSourceParams(FileSourceParams):
    image_field: str = Field("image", description="image path, or a list of paths (the first is used)")
    caption_field: str = Field("text", description="caption text")
    key_field: str | None = Field(None, description="unique key per line; default: the line number")
    url_field: str | None = Field(None, description="optional source URL field")
    image_root: str | None = Field(
        None, description="directory image paths are relative to; default: the file's"
    )


def _parse_line(raw: bytes, number: int, params: JsonlSourceParams, root: Path) -> Sample:
    sample = Sample(key=f"{number:09d}")
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        sample.reject_reason = "error:line_not_utf8"
        return sample
    except ValueError as exc:
        sample.reject_reason, sample.reject_detail = "error:invalid_json", str(exc)[:200]
        return sample
    if not isinstance(record, dict):
        sample.reject_reason = "error:invalid_json"
        sample.reject_detail = f"expected an object, got {type(record).__name__}"
        return sample
    if params.key_field and record.get(params.key_field) is not None:
        sample.key = str(record[params.key_field])
    sample.url = record.get(params.url_field) if params.url_field else None
    caption = record.get(params.caption_field)
    sample.caption = caption if isinstance(caption, str) else None
    image = record.get(params.image_field)
    if isinstance(image, list):
        image = image[0] if image else None
    if not isinstance(image, str):
        sample.reject_reason = "missing_image"
        return sample
    sample.image_path = image
    sample.image_bytes, sample.reject_reason = read_image_file(root / image)
    if sample.reject_reason is None and sample.caption is None:
        sample.reject_reason = "missing_caption"
    return sample


@register
class JsonlSource(FileSource):
    """`ingest.jsonl`: one shard per .jsonl file."""

    name = "ingest.jsonl"
    Params = JsonlSourceParams
    suffixes = (".jsonl",)

    def read_shard(self, shard: Shard) -> Iterator[pa.Table]:
        p = self.params
        root = self.context.resolve(p.image_root) if p.image_root else Path(shard.uri).parent
        batch: list[Sample] = []
        with open(shard.uri, "rb") as handle:
            for number, raw in enumerate(handle):
                if not raw.strip():
                    continue
                batch.append(_parse_line(raw, number, p, root))
                if len(batch) >= p.batch_rows:
                    yield self.to_table(shard, batch)
                    batch = []
        if batch:
            yield self.to_table(shard, batch)
