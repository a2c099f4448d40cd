"""Routing rules: only active rows reach a stage; rejects are stamped and lose media; failures are kept."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.routing import FAILED_REASON, run_on_active, with_routing
from pipeline.schema import MEDIA, REJECT_REASON, REJECT_STAGE


def _table(n: int = 4) -> pa.Table:
    return with_routing(
        pa.table(
            {
                "id": [f"r{i}" for i in range(n)],
                "images": pa.array([[{"bytes": b"x" * i, "path": None}] for i in range(n)], pa.list_(MEDIA)),
                "value": list(range(n)),
            }
        )
    )


def _reject_odd(table: pa.Table) -> pa.Table:
    odd = pc.equal(pc.bit_wise_and(table["value"], 1), 1)
    return table.set_column(
        table.column_names.index(REJECT_REASON),
        REJECT_REASON,
        pc.if_else(odd, "odd", pa.nulls(table.num_rows, pa.string())),
    )


def test_rejected_rows_are_stamped_and_lose_media():
    out = run_on_active(_table(), "filter.odd", _reject_odd)
    assert out.num_rows == 4
    rows = {r["id"]: r for r in out.to_pylist()}
    assert rows["r1"][REJECT_STAGE] == "filter.odd" and rows["r1"]["images"] is None
    assert rows["r2"][REJECT_REASON] is None and rows["r2"]["images"][0]["bytes"] == b"xx"


def test_later_stage_sees_only_active_rows():
    seen = []

    def record(table: pa.Table) -> pa.Table:
        seen.extend(table["id"].to_pylist())
        return table

    first = run_on_active(_table(), "filter.odd", _reject_odd)
    second = run_on_active(first, "map.record", record)
    assert sorted(seen) == ["r0", "r2"]
    assert second.num_rows == 4
    assert sorted(second.filter(pc.is_valid(second[REJECT_REASON]))["id"].to_pylist()) == ["r1", "r3"]


def test_a_batch_that_keeps_failing_is_recorded_not_dropped():
    calls = []

    def broken(table: pa.Table) -> pa.Table:
        calls.append(1)
        raise ValueError("model exploded")

    out = run_on_active(_table(), "filter.broken", broken)
    assert len(calls) == 2  # tried, then retried once
    assert out.num_rows == 4
    assert set(out[REJECT_REASON].to_pylist()) == {FAILED_REASON}
    assert all("model exploded" in d for d in out["reject_detail"].to_pylist())
    assert out["_failed"].to_pylist() == [True] * 4


def test_a_stage_that_drops_rows_is_a_failure_not_a_silent_loss():
    out = run_on_active(_table(), "filter.dropper", lambda t: t.slice(0, 1))
    assert out.num_rows == 4
    assert set(out[REJECT_REASON].to_pylist()) == {FAILED_REASON}
    assert "returned 1 rows for 4" in out["reject_detail"][0].as_py()


def test_a_block_with_no_active_rows_still_gains_the_stage_columns():
    def reject_all(table: pa.Table) -> pa.Table:
        index = table.column_names.index(REJECT_REASON)
        return table.set_column(index, REJECT_REASON, pa.array(["no"] * table.num_rows, pa.string()))

    def add_width(table: pa.Table) -> pa.Table:
        return table.append_column("width", pa.array([7] * table.num_rows, pa.int32()))

    out = run_on_active(run_on_active(_table(2), "filter.all", reject_all), "map.width", add_width)
    assert out.num_rows == 2 and out["width"].type == pa.int32() and out["width"].null_count == 2


def test_first_image_handles_slices_chunks_nulls_and_empty_lists():
    from pipeline.schema import first_image

    rows = [
        [{"bytes": b"a", "path": None}],
        None,
        [],
        [{"bytes": None, "path": "p"}],
        [{"bytes": b"e", "path": None}, {"bytes": b"f", "path": None}],
    ]
    array = pa.array(rows, pa.list_(MEDIA))
    assert first_image(array) == [b"a", None, None, None, b"e"]
    chunked = pa.chunked_array([array.slice(1, 3), array.slice(4, 1), array.slice(0, 1)])
    assert first_image(chunked) == [None, None, None, b"e", b"a"]
    assert first_image(pa.chunked_array([], pa.list_(MEDIA))) == []
