"""toolkit.distributed: the one answer to "which process is this?" for the tracer, the logger and the trainer."""

from __future__ import annotations

import pytest

from toolkit import distributed
from toolkit.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(variable, raising=False)


def test_single_process_is_rank_zero_of_one():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)


def test_launcher_variables_name_the_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (1, 4, False)
    monkeypatch.setenv("RANK", "3")  # the global rank wins over the rank on this machine
    assert distributed.rank() == 3 and distributed.rank_tag() == "[rank 3]"
    monkeypatch.setenv("RANK", "0")
    assert distributed.is_main_process()


@pytest.mark.parametrize(("variable", "value"), [("RANK", "one"), ("WORLD_SIZE", "-2")])
def test_bad_launcher_variable_names_itself(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}='{value}'"):
        distributed.rank() if variable == "RANK" else distributed.world_size()


def test_initialised_accelerate_state_wins_over_the_variables(monkeypatch):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    Accelerator(cpu=True)  # as the trainer does (distributed_training.py)
    try:
        monkeypatch.setenv("RANK", "2")  # set after accelerate started: accelerate says rank 0 of 1
        assert (distributed.rank(), distributed.world_size()) == (0, 1)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
