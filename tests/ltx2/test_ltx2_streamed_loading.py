"""Streamed loading of LTX-2's transformer and text encoder gives the weights from_pretrained gives."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from extensions_built_in.diffusion_models.ltx2 import placement, streaming
from extensions_built_in.diffusion_models.ltx2.checkpoint import load_component, resolve_source
from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
from tests.conftest import read_jsonl, tiny_model_config
from toolkit.trace import TraceConfig, init_tracer, reset_tracer


def _from_pretrained(source, name, config):
    """Today's path before streaming: the whole component read, then quantized."""
    component = load_component(source, name, torch.float32).requires_grad_(False).eval()
    placement.quantize_after_load(name, component, config)
    return component


def _assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module):
    expected_state, actual_state = expected.state_dict(), actual.state_dict()
    assert list(actual_state) == list(expected_state)
    for key, tensor in expected_state.items():
        assert actual_state[key].dtype == tensor.dtype, key
        assert torch.equal(actual_state[key], tensor), key
    # Buffers the state dict leaves out (rotary frequencies) are computed when the model is built: the same too.
    expected_buffers, actual_buffers = dict(expected.named_buffers()), dict(actual.named_buffers())
    assert list(actual_buffers) == list(expected_buffers)
    for key, tensor in expected_buffers.items():
        assert torch.equal(actual_buffers[key], tensor), key


SETTINGS = {
    "plain": {},
    "quantized": {"quantize": True, "qtype": "qint8", "quantize_te": True, "qtype_te": "qfloat8"},
    "offloaded": {"low_vram": True, "layer_offloading": True, "layer_offloading_text_encoder_percent": 0.5},
    "quantized_offloaded": {
        "quantize": True, "qtype": "qint8", "quantize_te": True, "qtype_te": "qint8",
        "layer_offloading": True, "layer_offloading_text_encoder_percent": 1.0,
    },
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_streamed_components_equal_from_pretrained(tiny_model_dir, setting):
    config = tiny_model_config(name_or_path=str(tiny_model_dir), **SETTINGS[setting])
    model = LTX2Model(config, "cpu").load_model()
    for name in streaming.STREAMED_COMPONENTS:
        _assert_same_weights(_from_pretrained(model.source, name, config), model.components[name])
    if config.quantize:
        quantized = [n for n, m in model.transformer.named_modules() if type(m).__name__ == "QLinear"]
        assert "transformer_blocks.0.attn1.to_q" in quantized and "proj_in" not in quantized
    if config.layer_offloading:
        assert model.text_encoder._ltx2_offloaded


@pytest.mark.parametrize("version", ["2.3", "2.5"])
def test_every_version_streams_the_same_weights(version):
    from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2

    source = resolve_source(str(ensure_tiny_ltx2(version=version)))
    for name in streaming.STREAMED_COMPONENTS:
        plan = streaming.plan_stream(source, name, torch.float32)
        assert plan.model is not None, plan.reason
        streamed, read = streaming.stream_component(plan, torch.float32, None, torch.device("cpu"))
        _assert_same_weights(load_component(source, name, torch.float32), streamed)
        assert read.bytes_read == sum(path.stat().st_size for path in map(Path, read.files)) - _headers(read.files)


def _headers(files) -> int:
    """The bytes of the safetensors headers (8-byte length + JSON), which hold no tensor data."""
    total = 0
    for name in files:
        with open(name, "rb") as handle:
            total += 8 + int.from_bytes(handle.read(8), "little")
    return total


def test_single_file_streams_the_same_weights(tiny_model_dir, tmp_path):
    from tests.ltx2.single_file_writer.write import save_single_file

    single_file = save_single_file(tiny_model_dir, tmp_path / "ltx-2-tiny.safetensors")
    source = resolve_source(str(single_file), str(tiny_model_dir))
    plan = streaming.plan_stream(source, "transformer", torch.bfloat16)
    streamed, read = streaming.stream_component(plan, torch.bfloat16, None, torch.device("cpu"))
    _assert_same_weights(load_component(source, "transformer", torch.bfloat16), streamed)
    assert read.files == [str(source.location)]


def test_a_hub_id_is_not_streamed_and_says_why():
    source = resolve_source("someone/some-ltx2-copy")
    plan = streaming.plan_stream(source, "transformer", torch.float32)
    assert plan.model is None and "no .safetensors" in plan.reason


def test_progress_names_component_and_file(tiny_model_dir, capsys, caplog):
    source = resolve_source(str(tiny_model_dir))
    plan = streaming.plan_stream(source, "transformer", torch.float32)
    with caplog.at_level(logging.INFO, logger="toolkit.memory_management.streamed_loading"):
        streaming.stream_component(plan, torch.float32, None, torch.device("cpu"))
    first = caplog.records[0].getMessage()
    assert first.startswith("Loading transformer: streaming") and "diffusion_pytorch_model.safetensors" in first
    bar = capsys.readouterr().err
    assert "Loading transformer" in bar and "B/s" in bar and "diffusion_pytorch_model.safetensors" in bar


def test_trace_records_bytes_and_files(tiny_model_dir, tmp_path):
    init_tracer(TraceConfig(enabled=True, output_dir=str(tmp_path), console=False, heartbeat_s=0))
    try:
        LTX2Model(tiny_model_config(name_or_path=str(tiny_model_dir), quantize=True, qtype="qint8"), "cpu").load_model()
    finally:
        reset_tracer()
    records = read_jsonl(tmp_path / "trace.jsonl")
    begins = {r["span_id"]: r["fields"] for r in records if r["type"] == "span_begin"}
    ends = {begins[r["span_id"]].get("component", r["name"]): r for r in records if r["type"] == "span_end"}
    transformer = ends["transformer"]["fields"]
    weights = tiny_model_dir / "transformer" / "diffusion_pytorch_model.safetensors"
    assert transformer["streamed"] is True and transformer["files"] == [weights.name]
    assert transformer["bytes_read"] == weights.stat().st_size - _headers([weights])
    assert transformer["blocks"] > 2 and transformer["largest_block"].startswith("transformer_blocks.")
    assert transformer["quantized_modules"] > 0
    (load_model,) = [r for r in records if r["type"] == "span_end" and r["name"] == "load_model"]
    assert str(weights) in load_model["fields"]["files"]
    assert load_model["fields"]["bytes"] >= weights.stat().st_size


def test_with_offloading_on_a_gpu_the_offloaded_blocks_stay_on_the_host_and_the_rest_go_to_the_device():
    config = tiny_model_config(layer_offloading=True, layer_offloading_transformer_percent=0.5)
    gpu = torch.device("cuda")  # only compared, never allocated on
    split = placement.offload_split(config, gpu, block_count=4)
    assert [split(f"transformer_blocks.{i}").type for i in range(4)] == ["cpu", "cpu", "cuda", "cuda"]
    assert split("").type == "cuda" and split("proj_in").type == "cuda"
    assert placement.offload_split(config, torch.device("cpu"), 4) is None  # a CPU run keeps everything on the host
    assert placement.offload_split(tiny_model_config(), gpu, 4) is None  # no offloading: one device


def test_a_split_stream_puts_each_block_where_its_device_function_says(tiny_model_dir):
    # The meta device stands in for the GPU: what is routed there holds no host memory afterwards.
    source = resolve_source(str(tiny_model_dir))
    plan = streaming.plan_stream(source, "transformer", torch.float32)
    blocks = len(plan.model.transformer_blocks)
    config = tiny_model_config(layer_offloading=True, layer_offloading_transformer_percent=0.5)
    split = placement.offload_split(config, torch.device("cuda"), blocks)
    to_meta = lambda name: torch.device("meta") if split(name).type == "cuda" else torch.device("cpu")  # noqa: E731
    model, _ = streaming.stream_component(plan, torch.float32, None, to_meta)
    kept = blocks // 2
    for index, block in enumerate(model.transformer_blocks):
        devices = {p.device.type for p in block.parameters()}
        assert devices == ({"cpu"} if index < kept else {"meta"}), (index, devices)
    assert model.proj_in.weight.device.type == "meta"
