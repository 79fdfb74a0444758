"""The README's Routers table lists every kind a rollout can run with, each with a minimal
`router` block that the spec accepts as written."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import TypeAdapter

from rollout.routers import router_kinds
from rollout.routers.base import kind_of
from rollout.spec import RouterConfig

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<kind>[a-z0-9-]+)` \| (?P<what>[^|]+) \| `(?P<block>\{.*\})` \|$")


def test_every_kind_has_a_row_whose_minimal_block_is_valid() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Routers\n") : text.index("\n## ", text.index("## Routers\n") + 1)]
    rows = [m for line in section.splitlines() if (m := ROW.match(line))]
    assert [m["kind"] for m in rows] == list(router_kinds())
    adapter: TypeAdapter[RouterConfig] = TypeAdapter(RouterConfig)
    for row in rows:
        config = adapter.validate_python(yaml.safe_load(row["block"]))
        assert kind_of(type(config)) == row["kind"]
