"""The metrics writer thread: a step only hands its values over; they are written later, in order, with
the time they were logged at, and none is lost when the run closes, fails or simply exits."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from toolkit.logging import LogConfig, LogManager, setup_logging
from toolkit.logging.sinks import MetricsSink, SinkSet
from toolkit.logging.sinks.background import BackgroundWriter

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_manager():
    yield
    LogManager.get_instance().cleanup()
    LogManager._instance = None


class RecordingSink(MetricsSink):
    name = "recording sink"

    def __init__(self) -> None:
        self.records: list[tuple[int, dict[str, float]]] = []
        self.closed = False

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.records.append((step, metrics))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_values_wait_for_the_writer_and_all_arrive_in_order_on_close():
    # An interval longer than the test: nothing is written until close() drains the writer.
    background = BackgroundWriter(logging.getLogger("ltx2_trace.test"), interval_s=3600)
    sinks, sink = SinkSet(logging.getLogger("ltx2_trace.test"), background), RecordingSink()
    sinks.add(sink)
    for step in range(500):
        sinks.log({"loss": step / 2, "lr": 1e-4}, step)
    assert sink.records == []  # the step only handed them over
    sinks.close()
    background.stop()
    assert [step for step, _ in sink.records] == list(range(500))
    assert sink.records[499] == (499, {"loss": 249.5, "lr": 1e-4})
    assert sink.closed


def test_metrics_jsonl_keeps_the_time_a_value_was_logged_not_when_it_was_written(tmp_path):
    logger = setup_logging(LogConfig(name="stamped", log_dir=tmp_path))
    before = time.time()
    logger.log_metrics({"01_Training/Loss": 0.5}, step=0)
    after = time.time()
    time.sleep(0.05)  # the writer writes it later than this
    logger.flush()
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert round(before, 3) <= record["time"] <= round(after, 3)
    assert record["metrics"] == {"01_Training/Loss": 0.5}


@pytest.mark.parametrize("ending", ["raise RuntimeError('the run failed')", "pass"])
def test_a_process_that_ends_without_finish_writes_every_record(tmp_path, ending):
    script = textwrap.dedent(
        f"""
        from toolkit.logging import LogConfig, setup_logging
        logger = setup_logging(LogConfig(name="unfinished", log_dir={str(tmp_path)!r}))
        for step in range(200):
            logger.log_metrics({{"01_Training/Loss": step / 4}}, step=step)
        {ending}
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == (1 if "raise" in ending else 0), done.stderr
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == list(range(200))
    assert records[-1]["metrics"] == {"01_Training/Loss": 199 / 4}
