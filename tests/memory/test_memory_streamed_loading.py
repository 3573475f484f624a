"""stream_into: a model built on the meta device filled block by block from sharded safetensors files."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from huggingface_hub import save_torch_state_dict
from torch import nn

from toolkit.memory_management.errors import StreamedLoadError
from toolkit.memory_management.streamed_loading import (
    TensorSource,
    folder_sources,
    group_into_blocks,
    safetensors_files,
    stream_into,
)
from toolkit.memory_management.tensors import module_bytes
from toolkit.quantize import quantize_module, quantize_while_loading

MiB = 1024 * 1024


class Stack(nn.Module):
    """A stand-in for a transformer: an input projection, `depth` blocks of two Linear layers, a norm."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(width, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.Linear(width, width)) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.scale = nn.Parameter(torch.ones(width))


def _saved(folder: Path, width: int, depth: int, shard: str) -> tuple[nn.Module, list[Path]]:
    torch.manual_seed(0)
    model = Stack(width, depth)
    folder.mkdir(parents=True, exist_ok=True)
    save_torch_state_dict(model.state_dict(), folder, max_shard_size=shard)
    return model, safetensors_files(folder)


def _empty(width: int, depth: int) -> nn.Module:
    with init_empty_weights():
        return Stack(width, depth)


def test_blocks_follow_the_patterns_and_the_model_order():
    keys = ["proj_in.weight", "blocks.0.0.weight", "blocks.0.1.bias", "blocks.1.0.weight", "norm.weight", "scale"]
    blocks = group_into_blocks(keys, (r"blocks\.\d+",))
    assert blocks == {
        "proj_in": ["proj_in.weight"],
        "blocks.0": ["blocks.0.0.weight", "blocks.0.1.bias"],
        "blocks.1": ["blocks.1.0.weight"],
        "norm": ["norm.weight"],
        "": ["scale"],
    }
    # A tensor next to the blocks' container is grouped with its own module, not with a block.
    nested = group_into_blocks(["model.layers.0.w", "model.embed.weight", "model.norm_w"], (r"model\.layers\.\d+",))
    assert nested == {"model.layers.0": ["model.layers.0.w"], "model.embed": ["model.embed.weight"], "model": ["model.norm_w"]}


def test_sharded_files_stream_into_the_same_weights(tmp_path):
    original, files = _saved(tmp_path, 32, 4, "20KB")
    assert len(files) > 2  # really sharded
    empty = _empty(32, 4)
    seen = []
    report = stream_into(empty, folder_sources(files), torch.bfloat16, (r"blocks\.\d+",), seen.append, "stack")
    # Blocks in state_dict order (the root's own tensors, then each child in turn), each module handed over once.
    blocks = list(dict.fromkeys(loaded.block for loaded in seen))
    assert blocks == ["", "proj_in", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "norm"]
    assert [loaded.name for loaded in seen if loaded.block == "blocks.0"] == ["blocks.0.0", "blocks.0.1"]
    assert [loaded.name for loaded in seen][:2] == ["", "proj_in"]
    assert sum(loaded.bytes_read for loaded in seen) == report.bytes_read
    for key, tensor in original.state_dict().items():
        loaded = empty.state_dict()[key]
        assert loaded.dtype == torch.bfloat16 and torch.equal(loaded, tensor.to(torch.bfloat16)), key
    assert report.bytes_read == sum(t.numel() * 4 for t in original.state_dict().values())
    assert report.tensors == len(original.state_dict()) and report.blocks == 7
    assert report.largest_block.startswith("blocks.") and report.largest_block_bytes == 2 * (32 * 32 + 32) * 4
    assert sorted(report.files) == sorted(map(str, files))


def test_quantized_while_streaming_equals_quantized_after(tmp_path):
    original, files = _saved(tmp_path, 64, 3, "40KB")
    quantize_module(original, "qint8", exclude=("proj_in",), component="stack")
    empty = _empty(64, 3)
    with quantize_while_loading(empty, "qint8", exclude=("proj_in",), component="stack") as (quantize, report):
        stream_into(empty, folder_sources(files), None, (r"blocks\.\d+",), lambda loaded: quantize((loaded.name,)), "stack")
    assert sorted(report.quantized) == [f"blocks.{i}.{j}" for i in range(3) for j in range(2)]
    assert report.bytes_after == module_bytes(original) and report.bytes_before > 3 * report.bytes_after // 2
    for key, tensor in original.state_dict().items():
        assert torch.equal(empty.state_dict()[key], tensor), key


def test_a_missing_tensor_or_a_wrong_shape_names_the_file(tmp_path):
    _, files = _saved(tmp_path, 16, 2, "1GB")
    sources = folder_sources(files)
    del sources["blocks.1.0.weight"]
    with pytest.raises(StreamedLoadError, match=r"model\.safetensors: 1 weights missing .*blocks\.1\.0\.weight"):
        stream_into(_empty(16, 2), sources, None, (r"blocks\.\d+",), lambda block: None, "stack")
    wrong = {**folder_sources(files), "norm.weight": TensorSource(str(files[0]), "proj_in.weight")}
    with pytest.raises(StreamedLoadError, match=r"proj_in\.weight in .*model\.safetensors does not fit norm\.weight"):
        stream_into(_empty(16, 2), wrong, None, (r"blocks\.\d+",), lambda block: None, "stack")


def _anonymous_rss() -> int:
    """Anonymous resident memory (heap): the memory-mapped file's pages are page cache, not counted."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RssAnon from /proc/self/status")
def test_the_host_holds_the_quantized_blocks_plus_one_block_at_most(tmp_path):
    width, depth = 1024, 24  # blocks of 8 MiB in fp32; 196 MiB in all
    original, files = _saved(tmp_path / "big", width, depth, "40MB")
    full_bytes = module_bytes(original)
    del original
    _, warm_up = _saved(tmp_path / "small", 16, 2, "1GB")  # first calls import and allocate; not the load's cost
    with quantize_while_loading(small := _empty(16, 2), "qint8", component="stack") as (quantize, _):
        stream_into(small, folder_sources(warm_up), None, (r"blocks\.\d+",), lambda loaded: quantize((loaded.name,)), "stack")
    empty = _empty(width, depth)
    baseline, read_peak, quantize_peak = _anonymous_rss(), 0, 0

    def on_module(loaded):
        nonlocal read_peak, quantize_peak
        read_peak = max(read_peak, _anonymous_rss() - baseline)  # the module read at full precision, and read-ahead
        quantize((loaded.name,))
        quantize_peak = max(quantize_peak, _anonymous_rss() - baseline)  # and quantized, quanto's temporaries released

    with quantize_while_loading(empty, "qint8", exclude=("proj_in",), component="stack") as (quantize, report):
        read = stream_into(empty, folder_sources(files), torch.float32, (r"blocks\.\d+",), on_module, "stack")
    resident = module_bytes(empty)
    assert resident < full_bytes / 3
    # Reading the whole model first (from_pretrained, then quantize_module) holds all of full_bytes. Streamed,
    # the host holds the quantized blocks so far plus one block in flight: the module being quantized and what the
    # reader read ahead (sampled at module boundaries: inside one layer's quantization quanto's temporaries add a
    # few times that layer, released after it).
    assert read_peak < resident + read.largest_block_bytes + 4 * MiB < full_bytes
    assert quantize_peak < resident + read.largest_block_bytes + 4 * MiB
    assert _anonymous_rss() - baseline < resident + 4 * MiB
