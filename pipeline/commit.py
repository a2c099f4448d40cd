"""The output layout and its commit protocol.

A file in `data/` or `rejects/` is absent or complete: it is written under `_runs/<run>/staging` with a
non-`.parquet` suffix, fsynced and renamed into place. `_SUCCESS.json` is written atomically and last, so
its presence means every listed file is there with the listed rows and sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import OutputExistsError
from pipeline.schema import MEDIA_COLUMNS

OWNED_NAMES = ("data", "rejects", "_runs", "_SUCCESS.json", "stats.json")


@dataclass(frozen=True)
class OutputLayout:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def rejects_dir(self) -> Path:
        return self.root / "rejects"

    @property
    def success_path(self) -> Path:
        return self.root / "_SUCCESS.json"

    @property
    def stats_path(self) -> Path:
        return self.root / "stats.json"

    def staging_dir(self, run_id: str) -> Path:
        return self.root / "_runs" / run_id / "staging"

    def is_complete(self) -> bool:
        return self.success_path.is_file()

    def prepare(self, run_id: str, overwrite: bool) -> None:
        """Make the layout ready for a fresh run; refuses to replace a complete output unless asked.

        Only the names this project owns are removed, so a mistyped OUT never deletes a user's files.
        """
        if self.root.exists() and not self.root.is_dir():
            raise OutputExistsError(f"output {self.root} exists and is not a directory")
        if self.is_complete() and not overwrite:
            raise OutputExistsError(
                f"output {self.root} already holds a complete run (_SUCCESS.json); "
                "pass --overwrite to replace it or choose another --output"
            )
        if self.root.is_dir():
            foreign = sorted(p.name for p in self.root.iterdir() if p.name not in OWNED_NAMES)
            if foreign:
                raise OutputExistsError(
                    f"output {self.root} holds files this pipeline did not write ({', '.join(foreign[:5])}); "
                    "choose an empty or new directory"
                )
        # _SUCCESS.json goes first so that a crash mid-cleanup never leaves a "complete" marker over partial data.
        for name in OWNED_NAMES[::-1]:
            target = self.root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for directory in (self.data_dir, self.rejects_dir, self.staging_dir(run_id)):
            directory.mkdir(parents=True, exist_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _leaf_paths(field: pa.Field, prefix: str = "") -> list[str]:
    """Parquet column paths of an Arrow field (`images.list.element.bytes`), as per-column options name them."""
    path = f"{prefix}{field.name}"
    if pa.types.is_struct(field.type):
        return [leaf for child in field.type for leaf in _leaf_paths(child, path + ".")]
    if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
        return _leaf_paths(field.type.value_field.with_name("element"), path + ".list.")
    return [path]


def _write_options(schema: pa.Schema) -> dict:
    """zstd everywhere except media bytes, which are JPEG/PNG/WebP already, and embeddings (fixed-size
    binary of float16, near-random bytes): compressing them costs time for nothing, and so does trying to
    dictionary-encode them."""
    leaves = [leaf for field in schema for leaf in _leaf_paths(field)]
    media = {leaf for leaf in leaves if leaf.split(".")[0] in MEDIA_COLUMNS and leaf.endswith(".bytes")}
    media |= {field.name for field in schema if pa.types.is_fixed_size_binary(field.type)}
    return {
        "compression": {leaf: ("none" if leaf in media else "zstd") for leaf in leaves},
        "use_dictionary": [leaf for leaf in leaves if leaf not in media],
        "write_page_checksum": True,
    }


def commit_parquet(table: pa.Table, staging_dir: Path, final_path: Path) -> dict:
    """Write `table` so that `final_path` is either absent or complete; returns its ledger record."""
    staging = staging_dir / (final_path.name + ".inprogress")
    sink = pa.BufferOutputStream()  # encoded in memory so the hash needs no second read of the file
    pq.write_table(table, sink, **_write_options(table.schema))
    encoded = sink.getvalue()
    with open(staging, "wb") as handle:
        handle.write(encoded)
        handle.flush()
        os.fsync(handle.fileno())
    digest = hashlib.sha256(encoded).hexdigest()
    size = encoded.size
    os.replace(staging, final_path)
    _fsync_dir(final_path.parent)
    return {"rows": table.num_rows, "sha256": digest, "bytes": size}


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".inprogress")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def verify_success(root: Path) -> list[str]:
    """Problems with a committed output: missing files, wrong row counts or hashes (empty when sound)."""
    layout = OutputLayout(root)
    if not layout.is_complete():
        return [f"{layout.success_path} is missing: the run did not complete"]
    ledger = json.loads(layout.success_path.read_text())
    problems = []
    for entry in ledger["files"]:
        path = root / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the ledger")
        elif pq.ParquetFile(path).metadata.num_rows != entry["rows"]:
            problems.append(f"{entry['path']}: row count differs from the ledger")
    return problems
