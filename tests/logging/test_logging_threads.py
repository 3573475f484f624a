"""Lines from many threads, with a progress bar running, stay whole and appear once."""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest

from toolkit.logging import LogConfig, LogManager, setup_logging

THREADS = 8
LINES = 200
PAYLOAD = "abcdefghij" * 6
# A whole line: timestamp, level, logger, message, nothing before or after.
MESSAGE = re.compile(rf"[\d :-]+ INFO    threads: thread (\d) line (\d{{3}}) {PAYLOAD} end")


@pytest.fixture(autouse=True)
def fresh_manager():
    yield
    LogManager.get_instance().cleanup()
    LogManager._instance = None


def test_eight_threads_write_every_line_once_and_whole(tmp_path, capsys):
    logger = setup_logging(LogConfig(name="threads", log_dir=tmp_path, max_file_bytes=0))
    logger.start_progress(total=THREADS * LINES, desc="lines")
    start = threading.Barrier(THREADS)

    def write_lines(thread: int) -> None:
        start.wait()
        for line in range(LINES):
            logger.info("thread %d line %03d %s end", thread, line, PAYLOAD)
            logger.update_progress(1)

    workers = [threading.Thread(target=write_lines, args=(thread,)) for thread in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    logger.finish()

    expected = Counter({(thread, line): 1 for thread in range(THREADS) for line in range(LINES)})
    file_lines = (tmp_path / "train.log").read_text().splitlines()
    assert len(file_lines) == THREADS * LINES
    assert _whole_messages(file_lines) == expected

    # The bar redraws with \r on the same stream; every log line must still be whole between breaks.
    console_segments = re.split(r"[\r\n]", capsys.readouterr().err)
    console_messages = [segment for segment in console_segments if "thread " in segment]
    assert _whole_messages(console_messages) == expected


def _whole_messages(lines: list[str]) -> Counter:
    found = Counter()
    for line in lines:
        match = MESSAGE.fullmatch(line)
        assert match is not None, f"broken line: {line!r}"
        found[(int(match.group(1)), int(match.group(2)))] += 1
    return found
