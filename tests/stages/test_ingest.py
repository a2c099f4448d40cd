"""Ingest stages read each layout into the shared row schema; problems become reject rows, not crashes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.schema import REJECT_REASON
from pipeline.stage import StageContext
from stages.fixtures import images as fx
from stages.fixtures.shards import pair_members, write_caption_parquet, write_jsonl, write_tar
from stages.ingest.jsonl import JsonlSource, JsonlSourceParams
from stages.ingest.parquet import ParquetSource, ParquetSourceParams
from stages.ingest.webdataset import WebDatasetParams, WebDatasetSource


def _read_all(stage) -> pa.Table:
    [shard] = stage.list_shards()
    return pa.concat_tables(list(stage.read_shard(shard)))


def _by_key(table: pa.Table) -> dict[str, dict]:
    return {r["source_key"]: r for r in table.to_pylist()}


def test_webdataset_pairs_and_every_tar_problem(tmp_path):
    jpeg = fx.encode(fx.scene(1).image, "JPEG")
    members = (
        pair_members("000", jpeg, "a red circle on a blue background")
        + pair_members("001", fx.encode(fx.scene(2).image, "PNG"), "two shapes", ext="png")
        + [("../evil.txt", b"owned")]
        + pair_members("002", jpeg, None)
        + pair_members("003", jpeg, b"caf\xe9 latte")  # Latin-1, not UTF-8
        + pair_members("004", jpeg, "x" * 1_000_000)
        + [("005.txt", b"caption without image")]
    )
    write_tar(tmp_path / "in" / "00000.tar", members)
    stage = WebDatasetSource(WebDatasetParams(path="in", batch_rows=2), StageContext(base_dir=tmp_path))
    [shard] = stage.list_shards()
    batches = list(stage.read_shard(shard))
    assert [b.num_rows for b in batches] == [2, 2, 2, 1]
    rows = _by_key(pa.concat_tables(batches))
    assert rows["000"][REJECT_REASON] is None and rows["000"]["images"][0]["bytes"] == jpeg
    assert rows["000"]["url"] == "https://example.com/000.jpg"
    assert rows["000"]["messages"] == [
        {"role": "user", "content": "<image>"},
        {"role": "assistant", "content": "a red circle on a blue background"},
    ]
    assert rows["001"]["images"][0]["path"] == "001.png"
    assert rows["../evil.txt"][REJECT_REASON] == "error:unsafe_member_name"
    assert rows["002"][REJECT_REASON] == "missing_caption"
    assert rows["003"][REJECT_REASON] == "error:caption_not_utf8"
    assert rows["004"][REJECT_REASON] is None and len(rows["004"]["caption"]) == 1_000_000
    assert rows["005"][REJECT_REASON] == "missing_image"
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "in" / "000.jpg").exists()


def test_ids_are_stable_and_independent_of_location(tmp_path):
    members = pair_members("000", fx.encode(fx.scene(1).image, "JPEG"), "a b c")
    ids = []
    for folder in ("one", "two"):
        write_tar(tmp_path / folder / "shard.tar", members)
        stage = WebDatasetSource(WebDatasetParams(path=folder), StageContext(base_dir=tmp_path))
        ids.append(_read_all(stage)["id"][0].as_py())
    assert ids[0] == ids[1] and len(ids[0]) == 24


def test_parquet_bytes_paths_and_structs(tmp_path):
    jpeg = fx.encode(fx.scene(1).image, "JPEG")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "img.jpg").write_bytes(jpeg)
    write_caption_parquet(tmp_path / "in" / "paths.parquet", ["img.jpg", "gone.jpg"], ["a b c", "d e f"])
    stage = ParquetSource(ParquetSourceParams(path="in/paths.parquet"), StageContext(base_dir=tmp_path))
    rows = _by_key(_read_all(stage))
    assert rows["000000000"]["images"][0] == {"bytes": jpeg, "path": "img.jpg"}
    assert rows["000000001"][REJECT_REASON] == "error:missing_image_file"

    struct = pa.table(
        {
            "img": pa.array(
                [{"bytes": jpeg, "path": "x.jpg"}], pa.struct([("bytes", pa.binary()), ("path", pa.string())])
            ),
            "text": ["a b c"],
            "k": ["key-1"],
        }
    )
    pq.write_table(struct, tmp_path / "hf.parquet")
    params = ParquetSourceParams(path="hf.parquet", image_column="img", caption_column="text", key_column="k")
    rows = _by_key(_read_all(ParquetSource(params, StageContext(base_dir=tmp_path))))
    assert rows["key-1"]["images"][0]["bytes"] == jpeg


def test_parquet_missing_column_and_truncated_file_fail_the_shard(tmp_path):
    write_caption_parquet(tmp_path / "a.parquet", [b"x"], ["a b c"])
    stage = ParquetSource(
        ParquetSourceParams(path="a.parquet", caption_column="text"), StageContext(base_dir=tmp_path)
    )
    with pytest.raises(ValueError, match="missing column"):
        _read_all(stage)
    data = (tmp_path / "a.parquet").read_bytes()
    (tmp_path / "a.parquet").write_bytes(data[: len(data) // 2])
    stage = ParquetSource(ParquetSourceParams(path="a.parquet"), StageContext(base_dir=tmp_path))
    with pytest.raises(pa.ArrowInvalid):
        _read_all(stage)


def test_jsonl_lines_become_rows_or_rejects(tmp_path):
    jpeg = fx.encode(fx.scene(1).image, "JPEG")
    (tmp_path / "img.jpg").write_bytes(jpeg)
    write_jsonl(
        tmp_path / "a.jsonl", [{"image": "img.jpg", "text": "a b c"}, {"images": ["img.jpg"], "text": "x"}]
    )
    with open(tmp_path / "a.jsonl", "ab") as handle:
        handle.write(b"{not json}\n" + b'{"image": "img.jpg", "text": "\xff\xfe"}\n' + b"[1, 2]\n")
    stage = JsonlSource(JsonlSourceParams(path="a.jsonl"), StageContext(base_dir=tmp_path))
    rows = [r for r in _read_all(stage).to_pylist()]
    assert [r[REJECT_REASON] for r in rows] == [
        None,
        "missing_image",
        "error:invalid_json",
        "error:line_not_utf8",
        "error:invalid_json",
    ]
    assert rows[0]["images"][0]["bytes"] == jpeg and rows[0]["caption"] == "a b c"
    stage = JsonlSource(
        JsonlSourceParams(path="a.jsonl", image_field="images"), StageContext(base_dir=tmp_path)
    )
    assert _read_all(stage).to_pylist()[1]["images"][0]["path"] == "img.jpg"
