"""tensor_reader: safetensors tensors read straight into their own memory, ahead of the loader within a window."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from toolkit.memory_management.errors import StreamedLoadError
from toolkit.memory_management.tensor_reader import ReadAhead, stored_tensors


@pytest.fixture
def stored(tmp_path):
    tensors = {
        "a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
        "c": torch.tensor([True, False, True]),
        "d": torch.tensor(7, dtype=torch.int64),
        "e": torch.zeros(0, 4, dtype=torch.float16),
        "f": torch.randn(300, 100).to(torch.float8_e4m3fn),
    }
    path = tmp_path / "weights.safetensors"
    save_file(tensors, path)
    return tensors, path


def test_every_dtype_and_shape_reads_back_bit_for_bit(stored):
    tensors, path = stored
    layout = stored_tensors(path)
    order = [layout[key] for key in sorted(layout)]
    with ReadAhead(order, window=0, readers=2) as reader:
        for tensor in order:
            value = reader.take()
            reader.done(tensor.nbytes)
            expected = tensors[tensor.key]
            assert value.dtype == expected.dtype and value.shape == expected.shape, tensor.key
            assert torch.equal(value.reshape(-1).view(torch.uint8), expected.reshape(-1).view(torch.uint8)), tensor.key


def test_large_tensors_are_read_in_chunks_by_several_readers(tmp_path, monkeypatch):
    from toolkit.memory_management import tensor_reader

    monkeypatch.setattr(tensor_reader, "CHUNK_BYTES", 4096)
    values = {"big": torch.randn(100, 333), "next": torch.randn(10)}
    save_file(values, tmp_path / "big.safetensors")
    layout = stored_tensors(tmp_path / "big.safetensors")
    with ReadAhead([layout["big"], layout["next"]], window=1 << 20, readers=3) as reader:
        assert torch.equal(reader.take(), values["big"]) and torch.equal(reader.take(), values["next"])


def test_the_reader_holds_no_more_than_the_window_ahead(tmp_path):
    values = {f"t{index}": torch.full((256,), float(index)) for index in range(8)}  # 1 KiB each
    save_file(values, tmp_path / "w.safetensors")
    layout = stored_tensors(tmp_path / "w.safetensors")
    order = [layout[f"t{index}"] for index in range(8)]
    with ReadAhead(order, window=3 * 1024, readers=2) as reader:
        assert reader.held_bytes == 3 * 1024  # three read before anything was taken: the window is full
        first = reader.take()
        assert reader.held_bytes == 3 * 1024  # taken but not done: its bytes still count, no fourth read
        reader.done(order[0].nbytes)
        assert reader.held_bytes == 3 * 1024  # the fourth one started
        assert torch.equal(first, values["t0"])
        for index in range(1, 8):
            assert torch.equal(reader.take(), values[f"t{index}"])
            assert reader.held_bytes <= 3 * 1024
            reader.done(order[index].nbytes)
        assert reader.held_bytes == 0
    # A tensor larger than the window is still read once the caller waits for it.
    with ReadAhead(order[:2], window=0, readers=1) as reader:
        assert reader.held_bytes == 0 and torch.equal(reader.take(), values["t0"])


def test_a_truncated_file_names_the_file_and_the_tensor(stored):
    _, path = stored
    layout = stored_tensors(path)
    data = path.read_bytes()
    path.write_bytes(data[: layout["f"].offset + 10])
    with ReadAhead([layout["f"]], window=1 << 20) as reader, pytest.raises(StreamedLoadError, match=r"weights\.safetensors ends before the bytes of f"):
        reader.take()


def test_a_header_whose_sizes_disagree_is_an_error(tmp_path):
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(StreamedLoadError, match=r"bad\.safetensors: w has shape \[4\] of F32 but 8 bytes"):
        stored_tensors(path)
