"""What every image-caption source shares: listing its input files as shards and building rows.

Each input file is a shard; a row's id hashes the source label, the file's path relative to the source root
and the sample key, so it is the same on every machine and every rerun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from pipeline.schema import MEDIA, MESSAGE, REJECT_DETAIL, REJECT_REASON, caption_messages, media_list, row_id
from pipeline.stage import Column, Params, Shard, SourceStage

CAPTION_ROW_COLUMNS = (
    Column("id", pa.string()),
    Column("source", pa.string()),
    Column("source_uri", pa.string()),
    Column("source_key", pa.string()),
    Column("task", pa.string()),
    Column("url", pa.string()),
    Column("images", pa.list_(MEDIA)),
    Column("caption", pa.string()),
    Column("messages", pa.list_(MESSAGE)),
)


class FileSourceParams(Params):
    path: str | list[str] = Field(
        description="a file, a directory (searched recursively) or a glob; or a list"
    )
    source: str | None = Field(
        None, description="label stored in `source`; defaults to the stage's short name"
    )
    batch_rows: int = Field(256, ge=1, description="rows per batch handed to the next stage")


@dataclass
class Sample:
    """One input sample before it becomes a row; `reject_reason` set when the source itself rejects it."""

    key: str
    image_bytes: bytes | None = None
    image_path: str | None = None
    caption: str | None = None
    url: str | None = None
    reject_reason: str | None = None
    reject_detail: str | None = None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "shard"


class FileSource(SourceStage):
    """A source whose shards are files with given suffixes under `path`."""

    produces = CAPTION_ROW_COLUMNS
    suffixes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.params.source or self.name.split(".", 1)[1]

    def _roots(self) -> list[Path]:
        paths = self.params.path if isinstance(self.params.path, list) else [self.params.path]
        return [self.context.resolve(p) for p in paths]

    def _files(self) -> list[tuple[Path, Path]]:
        """(file, root it was found under), sorted for a stable order."""
        found: dict[Path, Path] = {}
        for root in self._roots():
            if root.is_file():
                found[root] = root.parent
            elif root.is_dir():
                for f in root.rglob("*"):
                    if f.is_file() and f.name.lower().endswith(self.suffixes):
                        found[f] = root
            else:
                for f in root.parent.glob(root.name) if root.parent.is_dir() else []:
                    if f.is_file():
                        found[f] = root.parent
        return sorted(found.items())

    def check(self) -> list[str]:
        if not self._files():
            wanted = " or ".join(self.suffixes)
            return [f"path: no input files ({wanted}) found at {', '.join(map(str, self._roots()))}"]
        return []

    def list_shards(self) -> list[Shard]:
        shards = []
        for f, root in self._files():
            relative = f.relative_to(root).as_posix()
            digest = row_id(self.label, str(f.resolve()))[:6]
            shard_id = f"{_safe_name(self.label)}-{_safe_name(relative)}-{digest}"
            shards.append(Shard(shard_id, str(f.resolve()), relative))
        return shards

    def to_table(self, shard: Shard, samples: list[Sample]) -> pa.Table:
        """Rows in the shared schema; the caption becomes the assistant turn of `messages`."""
        label = self.label
        return pa.table(
            {
                "id": pa.array([row_id(label, shard.relative, s.key) for s in samples], pa.string()),
                "source": pa.array([label] * len(samples), pa.string()),
                "source_uri": pa.array([shard.uri] * len(samples), pa.string()),
                "source_key": pa.array([s.key for s in samples], pa.string()),
                "task": pa.array(["caption"] * len(samples), pa.string()),
                "url": pa.array([s.url for s in samples], pa.string()),
                "images": media_list([s.image_bytes for s in samples], [s.image_path for s in samples]),
                "caption": pa.array([s.caption for s in samples], pa.string()),
                "messages": caption_messages([s.caption for s in samples]),
                REJECT_REASON: pa.array([s.reject_reason for s in samples], pa.string()),
                REJECT_DETAIL: pa.array([s.reject_detail for s in samples], pa.string()),
            }
        )


def read_image_file(path: Path) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, reason) for an image referenced by path."""
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, "error:missing_image_file"
    except OSError:
        return None, "error:unreadable_image_file"


def decode_caption(raw: bytes) -> tuple[str | None, str | None]:
    """(caption, None) or (None, reason): invalid UTF-8 is a reject, never silently replaced."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "error:caption_not_utf8"
