"""Write `tests/unit/data/wire_spec.json`: the OpenAPI schemas the wire types are checked against.

    python scripts/extract_wire_spec.py ASSISTANTS_OPENAPI_YAML FULL_OPENAPI_YAML

The first file is the Assistants/Files/Vector-stores subset of OpenAI's spec (all its
`components.schemas`); the second, the full spec, supplies what the subset lacks: the
stream events and the delta objects they carry. Descriptions and `x-` extensions are
dropped (only structure is checked). Needs PyYAML.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

STREAM = (
    "AssistantStreamEvent",
    "ThreadStreamEvent",
    "RunStreamEvent",
    "RunStepStreamEvent",
    "MessageStreamEvent",
    "ErrorEvent",
    "DoneEvent",
)
DELTA_PREFIXES = ("MessageDelta", "RunStepDelta")
OUT = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data" / "wire_spec.json"


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ({name: _strip(p) for name, p in v.items()} if k == "properties" else _strip(v))
            for k, v in node.items()
            if not k.startswith("x-") and k not in ("description", "title", "example", "examples")
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def main(subset: str, full: str) -> None:
    schemas = yaml.load(Path(subset).read_text(), Loader=yaml.CSafeLoader)["components"]["schemas"]
    everything = yaml.load(Path(full).read_text(), Loader=yaml.CSafeLoader)["components"]["schemas"]
    picked = dict(schemas)
    for name, schema in everything.items():
        if name in STREAM or name.startswith(DELTA_PREFIXES):
            picked.setdefault(name, schema)
    OUT.write_text(json.dumps({"schemas": _strip(picked)}, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
