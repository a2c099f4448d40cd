"""The stage registry: manifests name stages by stable dotted names, never by import paths."""

from __future__ import annotations

import importlib

from pipeline.stage import Stage

_REGISTRY: dict[str, type[Stage]] = {}
_STAGE_PACKAGES = ("stages",)


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator adding a stage under its `name`; a second stage with the same name is a bug."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"stage name {name!r} registered twice: {_REGISTRY[name]} and {cls}")
    _REGISTRY[name] = cls
    return cls


def _load_stage_packages() -> None:
    for package in _STAGE_PACKAGES:
        importlib.import_module(package)


def get_stage(name: str) -> type[Stage] | None:
    _load_stage_packages()
    return _REGISTRY.get(name)


def all_stages() -> dict[str, type[Stage]]:
    _load_stage_packages()
    return dict(sorted(_REGISTRY.items()))
