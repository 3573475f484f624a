"""Shared fixtures of the verbose-layer tests: each test starts and ends with the null tracer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from toolkit.trace import reset_tracer


@pytest.fixture(autouse=True)
def null_tracer_around_each_test() -> Iterator[None]:
    reset_tracer()
    yield
    reset_tracer()
