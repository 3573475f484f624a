"""Shared fixtures of the verbose-layer tests: each test starts and ends with the null tracer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit.trace import reset_tracer


@pytest.fixture(autouse=True)
def null_tracer_around_each_test() -> Iterator[None]:
    reset_tracer()
    yield
    reset_tracer()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a trace.jsonl, parsed strictly (no NaN)."""
    return [json.loads(line, parse_constant=_reject) for line in path.read_text().splitlines()]


def _reject(constant: str) -> None:
    raise ValueError(f"non-standard JSON constant {constant} in the trace")


@pytest.fixture
def jsonl_reader():
    return read_jsonl
