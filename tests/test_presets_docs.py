"""The preset tables in the docs are the catalogue: every copy between `<!-- presets:begin -->`
and `<!-- presets:end -->` (docs/*.md, README.md) equals `bargein.presets.markdown_table()`, so a
preset added, renamed or changed without documenting it fails here."""

from __future__ import annotations

import re
from pathlib import Path

from bargein.presets import PRESETS, markdown_table

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- presets:begin -->\n(.*?)\n<!-- presets:end -->", re.S)
# The docs that describe choosing a preset point to the table.
POINTING = ("web.md", "protocol.md", "telephony.md", "realtime.md", "run.md")


def tables() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        blocks = BLOCK.findall(path.read_text(encoding="utf-8"))
        if blocks:
            found[path.name] = blocks
    return found


def test_every_preset_table_in_the_docs_is_the_catalogue() -> None:
    found = tables()
    assert "presets.md" in found, "docs/presets.md must carry the generated table"
    want = markdown_table()
    for name, blocks in found.items():
        for block in blocks:
            assert block == want, (
                f"{name}: the preset table differs from bargein.presets; regenerate it "
                "(docs/presets.md says how)"
            )


def test_the_table_names_every_preset_once_and_survives_markdown() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [row.split("|")[1].strip().strip("`") for row in rows] == list(PRESETS)
    for p in PRESETS.values():
        # A "|" would split a cell; a newline would end the table.
        assert "|" not in p.description + p.overrides() and "\n" not in p.description, p.name


def test_the_docs_that_choose_presets_point_to_the_table() -> None:
    for name in POINTING:
        assert "presets.md" in (REPO / "docs" / name).read_text(encoding="utf-8"), name
