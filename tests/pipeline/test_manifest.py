"""Manifest loading and validation: every problem named by its key path, before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ManifestError
from pipeline.manifest import load_manifest


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "inputs").mkdir(exist_ok=True)
    (tmp_path / "inputs" / "a.jsonl").write_text('{"image": "x.jpg", "text": "a b c d"}\n')
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


GOOD = """
name: t
output: out
stages:
  - stage: ingest.jsonl
    path: inputs
  - stage: filter.decode
  - stage: filter.aspect_ratio
    max_aspect_ratio: 2.5
"""


def test_valid_manifest_loads_with_defaults(tmp_path):
    manifest = load_manifest(_write(tmp_path, GOOD))
    assert [s.name for s in manifest.stages] == ["ingest.jsonl", "filter.decode", "filter.aspect_ratio"]
    assert manifest.stages[2].params.max_aspect_ratio == 2.5
    assert manifest.stages[2].params.min_aspect_ratio == pytest.approx(1 / 3)
    assert len(manifest.fingerprint) == 64


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path, text))
    return info.value.problems


def test_unknown_param_is_named_by_key_path(tmp_path):
    problems = _problems(tmp_path, GOOD.replace("max_aspect_ratio: 2.5", "max_aspect_ratoi: 2.5"))
    assert problems == ["stages[2].max_aspect_ratoi: unknown key (got 2.5)"]


def test_wrong_type_is_named_by_key_path(tmp_path):
    problems = _problems(tmp_path, GOOD.replace("2.5", '"wide"'))
    assert len(problems) == 1 and problems[0].startswith("stages[2].max_aspect_ratio:")


def test_wrong_value_is_named(tmp_path):
    problems = _problems(tmp_path, GOOD.replace("max_aspect_ratio: 2.5", "max_aspect_ratio: -1.0"))
    assert problems[0].startswith("stages[2].max_aspect_ratio: Input should be greater than 0")


def test_min_above_max_is_an_error(tmp_path):
    problems = _problems(
        tmp_path, GOOD.replace("max_aspect_ratio: 2.5", "max_aspect_ratio: 2.5\n    min_aspect_ratio: 3.0")
    )
    assert problems[0].startswith("stages[2]:") and "min_aspect_ratio must not exceed" in problems[0]


def test_duplicate_keys_are_an_error(tmp_path):
    problems = _problems(
        tmp_path, GOOD.replace("max_aspect_ratio: 2.5", "max_aspect_ratio: 2.5\n    max_aspect_ratio: 4.0")
    )
    assert "duplicate key 'max_aspect_ratio'" in problems[0]


def test_yaml_no_is_not_silently_a_string(tmp_path):
    problems = _problems(tmp_path, GOOD.replace("name: t", "name: no"))
    assert problems[0].startswith("name: Input should be a valid string")


def test_unknown_stage_lists_registered_names(tmp_path):
    problems = _problems(tmp_path, GOOD.replace("filter.decode", "filter.decodee"))
    assert problems[0].startswith("stages[1].stage: unknown stage 'filter.decodee'")
    assert "filter.decode," in problems[0]


def test_unknown_top_level_key(tmp_path):
    assert _problems(tmp_path, "outptu: x\n" + GOOD) == ["outptu: unknown key (got 'x')"]


def test_every_problem_reported_at_once(tmp_path):
    text = GOOD.replace("max_aspect_ratio: 2.5", "max_aspect_ratio: 2.5\n    bogus: 1").replace(
        "name: t", "seed: x"
    )
    problems = _problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith("seed:")  # top-level errors stop before stage checks
    problems = _problems(
        tmp_path,
        GOOD.replace("max_aspect_ratio: 2.5", "bogus: 1").replace(
            "- stage: filter.decode", "- stage: filter.decode\n    wrong: 2"
        ),
    )
    assert sorted(problems) == [
        "stages[1].wrong: unknown key (got 2)",
        "stages[2].bogus: unknown key (got 1)",
    ]


def test_validate_cli_exits_2_and_writes_nothing(tmp_path, capsys):
    manifest = _write(tmp_path, GOOD.replace("max_aspect_ratio: 2.5", "max_aspect_ratoi: 2.5"))
    assert main(["validate", str(manifest)]) == 2
    assert "stages[2].max_aspect_ratoi: unknown key" in capsys.readouterr().err
    assert main(["run", str(manifest)]) == 2
    assert not (tmp_path / "out").exists()


def test_validate_cli_accepts_good_manifest(tmp_path, capsys):
    assert main(["validate", str(_write(tmp_path, GOOD))]) == 0
    assert "OK: 3 stages" in capsys.readouterr().out
