"""Safe YAML loading that refuses duplicate keys.

PyYAML's `safe_load` silently keeps the last of two duplicate keys, so a manifest with a repeated
parameter would run with a value the user did not mean. This loader makes that an error.
"""

from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ManifestError


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ManifestError([f"duplicate key {key!r} at line {line} (first at line {seen[key]})"])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    """Parse YAML from `path`, turning syntax errors into manifest errors with the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([f"cannot read manifest {path}: {exc}"]) from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ManifestError([f"YAML syntax error: {exc}"]) from exc
