"""The manifest: YAML loaded safely and validated with pydantic before any work starts.

Every problem is reported with its key path (`stages[2].max_aspect_ratio`) so the user can find it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ManifestError
from pipeline.registry import all_stages, get_stage
from pipeline.stage import Params, Stage, StageContext
from pipeline.yaml_loader import load_yaml


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    address: str | None = Field(
        None, description="Ray cluster to join; None starts an embedded local instance"
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the embedded instance; None uses all")


class _ManifestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = "pipeline"
    seed: int = 0
    output: str | None = None
    ray: RaySettings = RaySettings()
    stages: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class StageSpec:
    """One validated stage entry of a manifest."""

    index: int
    name: str
    cls: type[Stage]
    params: Params

    @property
    def key(self) -> str:
        return f"stages[{self.index}]"

    def build(self, context: StageContext) -> Stage:
        return self.cls(self.params, context)


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    seed: int
    output: str | None
    ray: RaySettings
    stages: tuple[StageSpec, ...]
    fingerprint: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def context(self) -> StageContext:
        return StageContext(base_dir=self.base_dir, seed=self.seed)


def _loc(prefix: str, loc: tuple) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _describe(errors: list[dict], prefix: str = "") -> list[str]:
    problems = []
    for err in errors:
        where = _loc(prefix, tuple(err["loc"])) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        if "input" in err and err["type"] != "missing" and not isinstance(err["input"], (dict, list)):
            message += f" (got {err['input']!r})"
        problems.append(f"{where}: {message}")
    return problems


def _validate_stage(index: int, entry: Any) -> tuple[StageSpec | None, list[str]]:
    key = f"stages[{index}]"
    if not isinstance(entry, dict):
        return None, [f"{key}: must be a mapping with a 'stage' key, got {type(entry).__name__}"]
    name = entry.get("stage")
    if not isinstance(name, str):
        return None, [f"{key}.stage: required, the registered name of a stage (e.g. filter.aspect_ratio)"]
    cls = get_stage(name)
    if cls is None:
        known = ", ".join(all_stages())
        return None, [f"{key}.stage: unknown stage {name!r}; registered stages: {known}"]
    raw = {k: v for k, v in entry.items() if k != "stage"}
    try:
        params = cls.Params.model_validate(raw)
    except ValidationError as exc:
        return None, _describe(exc.errors(include_url=False), key)
    return StageSpec(index=index, name=name, cls=cls, params=params), []


def _fingerprint(model: _ManifestModel, specs: list[StageSpec]) -> str:
    canonical = {
        "name": model.name,
        "seed": model.seed,
        "stages": [{"stage": s.name, **s.params.model_dump(mode="json")} for s in specs],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def load_manifest(path: str | Path) -> Manifest:
    """Load and validate a manifest; raises ManifestError listing every problem found."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ManifestError([f"manifest file not found: {path}"])
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ManifestError(["(top level): the manifest must be a mapping with a 'stages' list"])
    try:
        model = _ManifestModel.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(_describe(exc.errors(include_url=False))) from None
    problems: list[str] = []
    specs: list[StageSpec] = []
    for index, entry in enumerate(model.stages):
        spec, errors = _validate_stage(index, entry)
        problems.extend(errors)
        if spec is not None:
            specs.append(spec)
    if problems:
        raise ManifestError(problems)
    return Manifest(
        path=path,
        name=model.name,
        seed=model.seed,
        output=model.output,
        ray=model.ray,
        stages=tuple(specs),
        fingerprint=_fingerprint(model, specs),
    )
