"""Metrics: windowed averages, bounded history, throughput, metrics.jsonl, sinks, W&B."""

from __future__ import annotations

import json
import logging
import sys
import types

import pytest

from toolkit.logging import LogConfig, LoggingError, LogManager, setup_logging
from toolkit.logging.metrics import MetricsTracker
from toolkit.logging.progress import ProgressTracker
from toolkit.logging.sinks import MetricsSink, open_wandb_sink


@pytest.fixture(autouse=True)
def fresh_manager():
    yield
    LogManager.get_instance().cleanup()
    LogManager._instance = None


class FakeClock:
    def __init__(self, *times: float) -> None:
        self._times = list(times)

    def __call__(self) -> float:
        return self._times.pop(0)


def test_windowed_average_uses_only_the_last_window_values():
    tracker = MetricsTracker(window=3)
    for step, loss in enumerate([10.0, 1.0, 2.0, 6.0]):
        tracker.update({"loss": loss}, step)
    assert tracker.get_average("loss") == 3.0
    assert tracker.get_latest("loss") == 6.0
    tracker.update({"loss": 7.0}, 4)
    assert tracker.get_average("loss") == 5.0


def test_history_keeps_at_most_history_max_entries():
    tracker = MetricsTracker(window=2, history_max=5)
    for step in range(12):
        tracker.update({"lr": step * 0.5}, step)
    assert tracker.get_history("lr") == [(7, 3.5), (8, 4.0), (9, 4.5), (10, 5.0), (11, 5.5)]


def test_unknown_metric_and_non_scalar_values_are_clear_errors():
    tracker = MetricsTracker(window=2)
    tracker.update({"loss": 1}, 0)
    with pytest.raises(LoggingError, match="No metric named 'los'.*logged metrics: loss"):
        tracker.get_average("los")
    with pytest.raises(LoggingError, match="'grads' is a list"):
        tracker.update({"grads": [1.0, 2.0]}, 1)


def test_throughput_is_smoothed_and_eta_uses_the_window():
    clock = FakeClock(100.0, 101.0, 103.0, 103.5)
    progress = ProgressTracker(total=10, smoothing=0.3, window=2, show_bar=False, clock=clock)
    first = progress.update(1, batch_size=4)
    assert first == {
        "05_Performance/Samples_Per_Second": 4.0,
        "05_Performance/Batch_Time_ms": 1000.0,
        "05_Performance/Accumulated_Samples": 4.0,
        "05_Performance/ETA_s": 9.0,
    }
    second = progress.update(1, batch_size=4)
    assert second["05_Performance/Samples_Per_Second"] == pytest.approx(0.3 * 2.0 + 0.7 * 4.0)
    assert second["05_Performance/Batch_Time_ms"] == 2000.0
    assert second["05_Performance/ETA_s"] == pytest.approx(8 * 1.5)
    third = progress.update(2, batch_size=4)  # two steps in 0.5 s: 0.25 s each
    assert third["05_Performance/Batch_Time_ms"] == 250.0
    assert third["05_Performance/Accumulated_Samples"] == 16.0
    assert third["05_Performance/ETA_s"] == pytest.approx(6 * (2.0 + 0.25) / 2)


def test_progress_and_memory_metrics_reach_metrics_jsonl(tmp_path):
    logger = setup_logging(LogConfig(name="metrics", log_dir=tmp_path, metrics_window=2))
    logger.start_progress(total=3, desc="train")
    for step in range(3):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        logger.update_progress(1, batch_size=2, loss=0.5)
    memory = logger.log_memory(step=3)
    assert logger.get_average("loss") == pytest.approx((0.5 + 1 / 3) / 2)
    logger.finish()

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [record["metrics"]["loss"] for record in records if "loss" in record["metrics"]] == [1.0, 0.5, 1 / 3]
    progress_records = [record for record in records if "05_Performance/Samples_Per_Second" in record["metrics"]]
    # throughput of step N is logged at N, the step its loss is logged at
    assert [record["step"] for record in progress_records] == [0, 1, 2]
    assert [record["metrics"]["05_Performance/Accumulated_Samples"] for record in progress_records] == [2.0, 4.0, 6.0]
    assert all(record["metrics"]["05_Performance/Batch_Time_ms"] > 0 for record in progress_records)
    assert records[-1] == {"step": 3, "time": records[-1]["time"], "metrics": memory}
    assert 10 < memory["14_System/rss_mb"] < 1024 * 1024


def test_update_progress_without_start_says_what_to_call():
    logger = setup_logging("no_bar")
    with pytest.raises(LoggingError, match="start_progress"):
        logger.update_progress(1)


def test_metrics_prefix_is_applied_to_sink_names_only(tmp_path):
    logger = setup_logging(LogConfig(name="prefixed", log_dir=tmp_path, metrics_prefix="train/"))
    logger.log_metrics({"loss": 0.25})
    assert logger.get_average("loss") == 0.25
    logger.finish()
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["step"] == 0
    assert record["metrics"] == {"train/loss": 0.25}


class FullDiskSink(MetricsSink):
    name = "full disk sink"

    def log(self, metrics: dict[str, float], step: int) -> None:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        raise AssertionError("a dropped sink must not be flushed")

    def close(self) -> None:
        raise AssertionError("a dropped sink must not be closed")


def test_a_failing_sink_is_dropped_with_one_warning_and_the_others_go_on(tmp_path, capsys):
    logger = setup_logging(LogConfig(name="sinks", log_dir=tmp_path))
    LogManager.get_instance().add_sink(FullDiskSink())
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_metrics({"loss": 2.0}, step=1)
    logger.finish()
    console = capsys.readouterr().err
    assert console.count("The full disk sink failed during log") == 1
    assert "No space left on device" in console
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_wandb_not_installed_warns_and_keeps_the_other_sinks(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    logger = setup_logging(LogConfig(name="wb", log_dir=tmp_path, enable_wandb=True))
    logger.log_metrics({"loss": 1.0}, step=0)
    assert LogManager.get_instance().sink_names == ["metrics.jsonl file"]
    logger.finish()
    console = capsys.readouterr().err
    assert "wandb package is not installed" in console
    assert "pip install wandb" in console
    assert "logging.use_wandb: false" in console


def test_installed_wandb_runs_offline_without_network(tmp_path, monkeypatch):
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class Run:
        def log(self, metrics, step):
            calls["log"].append((step, metrics))

        def finish(self):
            calls["finish"].append(True)

    def init(**settings):
        calls["init"].append(settings)
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    sink = open_wandb_sink(
        project="ltx2", run_name="r1", tags=["lora"], run_dir=str(tmp_path),
        warnings_to=logging.getLogger("ltx2_trace.test"), network_reachable=lambda: False,
    )  # fmt: skip
    sink.log({"loss": 0.5}, step=4)
    sink.close()
    assert calls["init"] == [{"project": "ltx2", "name": "r1", "tags": ["lora"], "dir": str(tmp_path), "mode": "offline"}]
    assert calls["log"] == [(4, {"loss": 0.5})]
    assert calls["finish"] == [True]


def test_tensorboard_enabled_in_config_gets_the_same_stream_as_metrics_jsonl(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = setup_logging(LogConfig(name="tb", log_dir=tmp_path, enable_tensorboard=True))
    assert logger.tensorboard.enabled
    logger.start_progress(total=4)
    for step in range(4):
        logger.log_metrics({"01_Training/Loss": (step + 1) / 4}, step=step)
        logger.update_progress(1, batch_size=3)
    logger.log_memory(step=6)
    logger.finish()
    assert not logger.tensorboard.enabled

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    # one name per number: the metric's name is its TensorBoard tag, at the step it was logged with
    assert [(event.step, event.value) for event in events.Scalars("01_Training/Loss")] == [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0)]
    assert [event.step for event in events.Scalars("05_Performance/Samples_Per_Second")] == [0, 1, 2, 3]
    assert [event.step for event in events.Scalars("14_System/rss_mb")] == [6]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = {(name, record["step"]) for record in records for name in record["metrics"]}
    assert logged == {(tag, event.step) for tag in events.Tags()["scalars"] for event in events.Scalars(tag)}
