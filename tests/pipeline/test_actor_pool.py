"""Model-holding stages run as a Ray actor pool: `setup` once per actor, every batch through the pool."""

from __future__ import annotations

import os

import pyarrow as pa

from pipeline.registry import _REGISTRY, register
from pipeline.stage import Column, Params, Resources, Stage, StageKind
from stages.fixtures import images as fx
from stages.fixtures.shards import pair_members, write_tar


def _model_stage() -> type[Stage]:
    """Defined in a function so Ray ships the class by value to its workers."""

    class SetupCounting(Stage):
        name = "test.setup_counting"
        kind = StageKind.MAP
        Params = Params
        requires = (Column("id", pa.string()),)
        produces = (Column("actor_pid", pa.int64()), Column("setups", pa.int64()))
        resources = Resources(actor_pool=True, num_actors=2)

        def setup(self) -> None:
            self.setups = getattr(self, "setups", 0) + 1

        def process(self, table: pa.Table) -> pa.Table:
            n = table.num_rows
            table = table.append_column("actor_pid", pa.array([os.getpid()] * n, pa.int64()))
            return table.append_column("setups", pa.array([self.setups] * n, pa.int64()))

    return SetupCounting


def test_actor_pool_stage_sets_up_once_per_actor(tmp_path, run_cli):
    stage_cls = _model_stage()
    register(stage_cls)
    try:
        for shard in range(6):
            members = []
            for i in range(5):
                members += pair_members(
                    f"{shard}-{i}", fx.encode(fx.scene(shard * 10 + i).image, "JPEG"), "a b c d"
                )
            write_tar(tmp_path / "in" / f"{shard:05d}.tar", members)
        (tmp_path / "m.yaml").write_text(
            "output: out\nstages:\n  - stage: ingest.webdataset\n    path: in\n  - stage: test.setup_counting\n"
        )
        code, _, err = run_cli("run", tmp_path / "m.yaml")
        assert code == 0, err
        from pipeline.query import connect

        con = connect(tmp_path / "out")
        rows, pids, max_setups = con.execute(
            "SELECT count(*), count(DISTINCT actor_pid), max(setups) FROM samples"
        ).fetchone()
        assert rows == 30 and max_setups == 1 and 1 <= pids <= 2
        assert os.getpid() not in {
            p for (p,) in con.execute("SELECT DISTINCT actor_pid FROM samples").fetchall()
        }
    finally:
        _REGISTRY.pop(stage_cls.name, None)
