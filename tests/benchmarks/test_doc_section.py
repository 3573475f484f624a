"""benchmarks/doc_section.py: a benchmark rewrites its own section of docs/benchmarks.md and nothing else."""

from __future__ import annotations

import pytest

from benchmarks.doc_section import TITLE, replace_section, write_section


def test_a_section_is_added_then_replaced_leaving_the_others_as_they_were(tmp_path):
    doc = tmp_path / "docs" / "benchmarks.md"
    write_section("load", "## Load\n\nfirst table", doc)
    write_section("overhead", "## Overhead\n\n| a | b |", doc)
    by_hand = doc.read_text() + "\nA note someone wrote by hand.\n"
    doc.write_text(by_hand)
    write_section("load", "## Load\n\nsecond table", doc)
    text = doc.read_text()
    assert text.startswith(TITLE)
    assert "<!-- bench:load -->\n## Load\n\nsecond table\n<!-- /bench:load -->" in text
    assert "first table" not in text
    assert "<!-- bench:overhead -->\n## Overhead\n\n| a | b |\n<!-- /bench:overhead -->" in text
    assert text.index("bench:load") < text.index("bench:overhead") < text.index("A note someone wrote by hand.")


def test_section_names_are_plain():
    with pytest.raises(ValueError, match="section name"):
        replace_section("", "two words", "body")
