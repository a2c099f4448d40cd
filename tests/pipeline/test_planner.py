"""The planner checks the manifest as a whole: column contracts, source order, paths, output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ManifestError
from pipeline.run import plan_manifest


def _manifest(tmp_path: Path, stages: str, output: str = "out") -> Path:
    (tmp_path / "inputs").mkdir(exist_ok=True)
    (tmp_path / "inputs" / "a.jsonl").write_text('{"image": "x.jpg", "text": "a b c d"}\n')
    path = tmp_path / "m.yaml"
    path.write_text(f"output: {output}\nstages:\n{stages}")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        plan_manifest(path)
    return info.value.problems


def test_required_column_not_produced_upstream(tmp_path):
    path = _manifest(tmp_path, "  - stage: ingest.jsonl\n    path: inputs\n  - stage: filter.aspect_ratio\n")
    problems = _problems(path)
    assert problems == [
        "stages[1] (filter.aspect_ratio): requires column 'width', which no earlier stage produces",
        "stages[1] (filter.aspect_ratio): requires column 'height', which no earlier stage produces",
    ]


def test_source_must_come_first(tmp_path):
    path = _manifest(tmp_path, "  - stage: filter.decode\n  - stage: ingest.jsonl\n    path: inputs\n")
    assert any("sources must come before" in p for p in _problems(path))


def test_missing_input_path_is_named(tmp_path):
    path = _manifest(tmp_path, "  - stage: ingest.jsonl\n    path: nowhere\n")
    problems = _problems(path)
    assert problems[0].startswith("stages[0].path: no input files (.jsonl) found at")


def test_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    path = _manifest(tmp_path, "  - stage: ingest.jsonl\n    path: inputs\n", output="file/sub")
    assert _problems(path) == [f"output: {tmp_path / 'file'} exists and is not a directory"]


def test_plan_lists_contracts_and_output_schema(tmp_path, capsys):
    path = _manifest(
        tmp_path,
        "  - stage: ingest.jsonl\n    path: inputs\n  - stage: filter.decode\n  - stage: filter.decode\n",
    )
    assert main(["plan", str(path), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in plan["stages"]] == ["ingest.jsonl", "filter.decode#1", "filter.decode#2"]
    decode = plan["stages"][1]
    assert decode["requires"] == {"images": "list<item: struct<bytes: binary, path: string>>"}
    assert decode["produces"]["width"] == "int32"
    assert decode["params"]["max_pixels"] == 89_478_485
    assert plan["output_columns"]["id"] == "string" and "width" in plan["output_columns"]
    assert main(["plan", str(path)]) == 0
    assert "requires:  images" in capsys.readouterr().out
