"""The fast tar reader agrees with `tarfile` on every header format and refuses corrupt archives."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from stages.ingest.tar_stream import TarFormatError, iter_members
from stages.ingest.webdataset import iter_tar_samples

ENTRIES = [
    (
        "a" * 150 + "/long-directory-name.jpg",
        b"\xff\xd8" + b"x" * 3000,
    ),  # needs a ustar prefix, GNU or pax name
    ("b" * 120 + ".txt", b"long basename"),  # only GNU long names or pax can hold it
    ("dir/caf\u00e9.txt", "caf\u00e9 \u00fc".encode()),
    ("empty.json", b""),
]


def _archive(fmt: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, data in ENTRIES:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            try:
                archive.addfile(info, io.BytesIO(data))
            except ValueError:  # ustar cannot hold a 120-character basename
                continue
        for name, kind, link in (("folder", tarfile.DIRTYPE, ""), ("link", tarfile.SYMTYPE, "/etc/passwd")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            archive.addfile(info)
    return buffer.getvalue()


def _reference(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        return [(m.name, archive.extractfile(m).read() if m.isfile() else b"") for m in archive]


@pytest.mark.parametrize(
    "fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT], ids=["gnu", "pax", "ustar"]
)
def test_members_match_tarfile(fmt):
    data = _archive(fmt)
    members = list(iter_members(io.BytesIO(data)))
    assert [(m.name, m.data) for m in members] == _reference(data)
    kinds = {m.name: (m.is_file, m.is_dir) for m in members}
    assert kinds["folder"] == (False, True) and kinds["link"] == (False, False)
    assert len(members) >= 5


def test_corrupt_and_truncated_archives_raise():
    data = bytearray(_archive(tarfile.GNU_FORMAT))
    with pytest.raises(TarFormatError, match="truncated"):
        list(iter_members(io.BytesIO(bytes(data[:1700]))))
    data[10] ^= 0xFF
    with pytest.raises(TarFormatError, match="checksum"):
        list(iter_members(io.BytesIO(bytes(data))))


def test_gzipped_shards_are_read(tmp_path):
    plain = _archive(tarfile.PAX_FORMAT)
    (tmp_path / "s.tar.gz").write_bytes(gzip.compress(plain))
    (tmp_path / "s.tar").write_bytes(plain)
    keys = [s.key for s in iter_tar_samples(str(tmp_path / "s.tar.gz"))]
    assert keys == [s.key for s in iter_tar_samples(str(tmp_path / "s.tar"))] and len(keys) == 5
