"""Loading an open_clip model by name with a pretrained tag, a local checkpoint, or random weights.

Hubs may be unreachable (they are here and in CI), so a tag is only accepted when its checkpoint is
already in the cache; otherwise the error says how to point `pretrained` at a local file. A model
config given as a JSON path is registered under its file stem, which is how the project's own small
model (models/curate-tiny-clip) is named.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

RANDOM = "random"  # untrained weights: for timing a model's architecture, never for curation
HOW_TO_PROVIDE = (
    "download the checkpoint where there is a network and set `pretrained:` to its local path "
    "(an open_clip .pt/.bin/.safetensors file), or use `cache_dir:` holding a cached download"
)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class ClipLoadError(Exception):
    """The model named in a manifest cannot be built or its weights cannot be found."""


@dataclass
class LoadedClip:
    name: str
    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    embed_dim: int
    context_length: int
    image_size: int


def model_name(model: str) -> str:
    """The open_clip name for `model`, registering it first when it is a config JSON path."""
    import open_clip

    if model.endswith(".json"):
        path = Path(model)
        if not path.is_file():
            raise ClipLoadError(f"model config {path} does not exist")
        open_clip.add_model_config(path)
        return path.stem
    return model


def model_config(name: str) -> dict:
    import open_clip

    config = open_clip.get_model_config(name)
    if config is None:
        raise ClipLoadError(
            f"unknown open_clip model {name!r}: use a name from open_clip.list_models() "
            "or the path of a model config JSON"
        )
    return config


def _looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES)


def _cached_tag(name: str, tag: str, cache_dir: str | None) -> bool:
    """Whether the checkpoint of a pretrained tag is already on disk: no network is touched."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    config = open_clip.get_pretrained_cfg(name, tag)
    if config.get("file"):
        return Path(config["file"]).is_file()
    hub = config.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return any(isinstance(try_to_load_from_cache(repo, f, cache_dir=cache_dir), str) for f in names)
    url = config.get("url", "")
    root = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "clip"
    return bool(url) and (root / os.path.basename(url)).is_file()


def weights_problem(name: str, pretrained: str, cache_dir: str | None) -> str | None:
    """Why the weights cannot be loaded without a network, or None when they can."""
    import open_clip

    if pretrained == RANDOM:
        return None
    if _looks_like_path(pretrained):
        return None if Path(pretrained).is_file() else f"checkpoint file {pretrained} does not exist"
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        return f"{pretrained!r} is neither a checkpoint file nor a pretrained tag of {name} (tags: {tags})"
    if not _cached_tag(name, pretrained, cache_dir):
        return f"pretrained tag {pretrained!r} of {name} is not in the cache ({cache_dir or 'default cache'})"
    return None


def load_clip(model: str, pretrained: str, cache_dir: str | None = None, device: str = "cpu") -> LoadedClip:
    """Build the model in eval mode with its own preprocessing transform and tokenizer."""
    import open_clip

    name = model_name(model)
    config = model_config(name)
    problem = weights_problem(name, pretrained, cache_dir)
    if problem:
        raise ClipLoadError(f"{name}: {problem}; {HOW_TO_PROVIDE}")
    try:
        built, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None if pretrained == RANDOM else pretrained, cache_dir=cache_dir, device=device
        )
    except Exception as exc:  # a corrupt or mismatched checkpoint surfaces here, as any exception
        raise ClipLoadError(
            f"{name} with {pretrained!r}: {type(exc).__name__}: {exc}; {HOW_TO_PROVIDE}"
        ) from exc
    built.eval()
    vision = config["vision_cfg"]
    image_size = vision["image_size"]
    return LoadedClip(
        name=name,
        model=built,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(name, cache_dir=cache_dir),
        embed_dim=config["embed_dim"],
        context_length=config["text_cfg"].get("context_length", 77),
        image_size=image_size if isinstance(image_size, int) else max(image_size),
    )
