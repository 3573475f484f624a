"""Only the main process writes the log file and metrics; other ranks print warnings and above."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path


def _log_as_rank(rank: int, log_dir: str, console_path: str) -> None:
    """Runs in a fresh spawned process, as torchrun would start one per rank."""
    os.environ["RANK"] = str(rank)
    with open(console_path, "w", encoding="utf-8") as console:
        sys.stderr = console
        from toolkit.logging import LogConfig, setup_logging

        logger = setup_logging(LogConfig(name="ranks", log_dir=log_dir))
        logger.info("info from rank %d", rank)
        logger.warning("warning from rank %d", rank)
        logger.log_metrics({"loss": float(rank) + 0.5}, step=3)
        logger.finish()


def test_only_rank_zero_writes_files_and_rank_one_still_warns(tmp_path: Path):
    spawn = multiprocessing.get_context("spawn")
    consoles = {rank: tmp_path / f"console_{rank}.txt" for rank in (0, 1)}
    processes = [
        spawn.Process(target=_log_as_rank, args=(rank, str(tmp_path / "logs"), str(consoles[rank])))
        for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [process.exitcode for process in processes] == [0, 0]

    log_text = (tmp_path / "logs" / "train.log").read_text()
    assert "info from rank 0" in log_text
    assert "warning from rank 0" in log_text
    assert "rank 1" not in log_text
    metric_lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["metrics"] for line in metric_lines] == [{"loss": 0.5}]
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["metrics.jsonl", "train.log"]

    rank_zero_console = consoles[0].read_text()
    assert "info from rank 0" in rank_zero_console
    rank_one_console = consoles[1].read_text()
    assert "[rank 1] WARNING ranks: warning from rank 1" in rank_one_console
    assert "info from rank 1" not in rank_one_console
