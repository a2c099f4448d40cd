"""WebDataset tar shards as img2dataset writes them: KEY.jpg|png|webp + KEY.txt + KEY.json.

Members are streamed from the tar (never extracted to disk; see `tar_stream`), grouped into samples by key. A member whose
name could escape a directory (`../x`, `/x`) or that is not a regular file becomes a reject row, as does a
pair with no caption or no image.
"""

from __future__ import annotations

import gzip
import json
import posixpath
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from pipeline.registry import register
from pipeline.stage import Shard
from stages.ingest.caption_rows import FileSource, FileSourceParams, Sample, decode_caption
from stages.ingest.tar_stream import iter_members

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class WebDatasetParams(FileSourceParams):
    pass


def _unsafe(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/") or "\\" in name


def _split(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the basename."""
    directory, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(directory, stem), ext.lower()


def _to_sample(key: str, parts: dict[str, bytes]) -> Sample:
    sample = Sample(key=key)
    meta = parts.get("json")
    if meta is not None:
        try:
            sample.url = json.loads(meta).get("url")
        except (ValueError, AttributeError):
            sample.reject_detail = "json sidecar unreadable"
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in parts), None)
    if image_ext is not None:
        sample.image_bytes = parts[image_ext]
        sample.image_path = f"{key}.{image_ext}"
    if "txt" in parts:
        sample.caption, sample.reject_reason = decode_caption(parts["txt"])
    if image_ext is None:
        sample.reject_reason = "missing_image"
        sample.reject_detail = f"members: {', '.join(sorted(parts))}"
    elif "txt" not in parts:
        sample.reject_reason = "missing_caption"
    return sample


def _open(path: str) -> BinaryIO:
    return gzip.open(path, "rb") if path.endswith((".gz", ".tgz")) else open(path, "rb")


def iter_tar_samples(path: str) -> Iterator[Sample]:
    """Stream samples of one tar in member order; consecutive members with the same key form a sample."""
    key: str | None = None
    parts: dict[str, bytes] = {}
    with _open(path) as handle:
        for member in iter_members(handle):
            if member.is_dir:
                continue
            if _unsafe(member.name) or not member.is_file:
                kind = "unsafe_member_name" if _unsafe(member.name) else "unsafe_member_type"
                yield Sample(
                    key=member.name,
                    reject_reason=f"error:{kind}",
                    reject_detail=f"tar member {member.name!r}",
                )
                continue
            member_key, ext = _split(member.name)
            if member_key != key:
                if key is not None:
                    yield _to_sample(key, parts)
                key, parts = member_key, {}
            parts[ext] = member.data
    if key is not None:
        yield _to_sample(key, parts)


@register
class WebDatasetSource(FileSource):
    """`ingest.webdataset`: one shard per .tar file."""

    name = "ingest.webdataset"
    Params = WebDatasetParams
    suffixes = (".tar", ".tar.gz", ".tgz")

    def read_shard(self, shard: Shard) -> Iterator[pa.Table]:
        batch: list[Sample] = []
        for sample in iter_tar_samples(shard.uri):
            batch.append(sample)
            if len(batch) >= self.params.batch_rows:
                yield self.to_table(shard, batch)
                batch = []
        if batch:
            yield self.to_table(shard, batch)
