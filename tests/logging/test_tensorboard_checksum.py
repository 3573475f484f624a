"""TensorBoard's event checksums in C (toolkit/logging/sinks/tensorboard_checksum.py): the same numbers as
TensorBoard's own Python ones, and event files that TensorBoard's reader, checking every record with its
Python checksum, reads back whole."""

from __future__ import annotations

import os
import struct

import pytest
import torch
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tensorboard_python
from tensorboard.summary.writer import record_writer

from toolkit.logging.sinks.tensorboard import TensorBoardSink
from toolkit.logging.sinks.tensorboard_checksum import masked_crc32c


@pytest.mark.parametrize("size", [0, 1, 7, 8, 4096, 100_003])
def test_the_checksum_is_tensorboards_own(size):
    data = os.urandom(size)
    assert masked_crc32c(data) == tensorboard_python.masked_crc32c(data)
    assert masked_crc32c(bytearray(data)) == masked_crc32c(memoryview(data)) == masked_crc32c(data)


def read_records(path) -> list[bytes]:
    """Every record of an event file, as TensorBoard's Python reader checks and returns them."""
    reader = tensorboard_python.PyRecordReader_New(str(path))
    records = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return records
        records.append(reader.record())


def test_a_sink_writes_events_with_c_checksums_that_tensorboard_reads_back(tmp_path):
    sink = TensorBoardSink(tmp_path)
    assert record_writer.masked_crc32c is masked_crc32c
    sink.log({"01_Training/Loss": 0.25}, step=3)
    frames = torch.arange(4 * 3 * 16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(1, 4, 3, 16, 16)
    sink.writer.add_video("13_Samples/clip/Video", frames, 3, fps=8)
    sink.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")

    events = [event_pb2.Event.FromString(record) for record in read_records(path)]
    values = {value.tag: value for event in events for value in event.summary.value}
    assert values["01_Training/Loss"].simple_value == 0.25
    video = values["13_Samples/clip/Video"].image
    assert (video.width, video.height) == (16, 16) and video.encoded_image_string.startswith(b"GIF")

    # The reader does check: one flipped byte of the video's record is a checksum error.
    data = bytearray(path.read_bytes())
    at = data.index(b"GIF8")
    data[at + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(errors.DataLossError, match="crc32 check"):
        read_records(path)


def test_each_record_carries_the_c_checksum_of_its_length_and_data(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.log({"01_Training/Loss": 1.5}, step=0)
    sink.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    data, offset, records = path.read_bytes(), 0, 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[offset + 8 : offset + 12])[0] == masked_crc32c(header)
        body = data[offset + 12 : offset + 12 + length]
        assert struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])[0] == masked_crc32c(body)
        offset += 16 + length
        records += 1
    assert records >= 2  # the file's version record and the scalar
