"""benchmarks/doc_section.py: a benchmark rewrites its own section of docs/benchmarks.md and nothing else."""

from __future__ import annotations

import pytest

from benchmarks.doc_section import TITLE, replace_section, report, section_names, write_section


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


def test_the_header_is_the_modules_and_a_report_names_its_command_and_machine(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nAn old header, edited by hand.\n\n<!-- bench:a -->\n## A\n<!-- /bench:a -->\n")
    body = report("Load", "python benchmarks/bench_x.py --write-doc", "What it measures.", ["| a |\n| --- |"], 0.5)
    write_section("b", body, doc)
    text = doc.read_text()
    assert text.startswith(TITLE) and "edited by hand" not in text and "<!-- bench:a -->\n## A\n" in text
    lines = text[text.index("<!-- bench:b -->"):].splitlines()
    assert lines[1:6] == ["## Load", "", "`python benchmarks/bench_x.py --write-doc`", "", "What it measures."]
    assert lines[-2].startswith("Measured ") and "load average 0.5 before" in lines[-2]
    assert section_names(text) == ["a", "b"]
