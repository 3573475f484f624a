"""The README's "Project layout" block names paths that exist, and names every top-level part of toolkit/
and extensions_built_in/, so the map and the tree cannot drift apart unnoticed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_paths(readme: str) -> list[str]:
    """First word of each line of the second code block under '## Project layout' (the first draws the layers)."""
    section = readme.split("## Project layout\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    return [line.split()[0] for line in blocks[1].splitlines() if line.strip()]


def top_level_parts(folder: str) -> set[str]:
    """`folder/x.py` and `folder/x/` for each module and package directly in `folder` (no __init__, no caches)."""
    parts = set()
    for entry in (ROOT / folder).iterdir():
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_dir():
            parts.add(f"{folder}/{entry.name}/")
        elif entry.suffix == ".py":
            parts.add(f"{folder}/{entry.name}")
    return parts


def test_every_path_in_the_layout_exists():
    missing = [path for path in layout_paths((ROOT / "README.md").read_text()) if not (ROOT / path).exists()]
    assert not missing, f"README 'Project layout' names paths that do not exist: {missing}"


def test_the_layout_names_every_part_of_toolkit_and_the_built_in_extensions():
    named = set(layout_paths((ROOT / "README.md").read_text()))
    named_dirs = {path for path in named if path.endswith("/")}
    parts = top_level_parts("toolkit") | top_level_parts("extensions_built_in")
    # A package is covered when it or any path inside it is named (toolkit/models/ by its files).
    unnamed = sorted(part for part in parts if part not in named and not any(p.startswith(part) for p in named | named_dirs))
    assert not unnamed, f"README 'Project layout' leaves out: {unnamed}"


def test_layout_paths_reads_the_second_block():
    readme = "## Project layout\n\n```\nlayers drawing\n```\n\n```\nrun.py   CLI\ntoolkit/   x\n```\n\n## Tests\n"
    assert layout_paths(readme) == ["run.py", "toolkit/"]
