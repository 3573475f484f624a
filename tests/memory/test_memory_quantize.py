"""toolkit.quantize: which layers are quantized, their real bytes, and a LoRA training on top."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.memory.conftest import run_step
from toolkit.memory_management import QuantizationError, module_bytes, tensor_bytes
from toolkit.quantize import quantize_module, quantized_weight_bytes
from extensions_built_in.diffusion_models.ltx2.quantization_excludes import LTX2_TRANSFORMER_EXCLUDE


def _mlp(dtype: torch.dtype = torch.float32) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 304), nn.Linear(304, 96)).to(dtype)


def test_qint8_weights_are_about_four_times_smaller_than_fp32():
    model = _mlp()
    weights_before = [tensor_bytes(layer.weight) for layer in model if isinstance(layer, nn.Linear)]
    report = quantize_module(model, "qint8", exclude=[])

    assert report.quantized == ["0", "2", "3"]
    assert report.quantized_weight_bytes_before == sum(weights_before) == 4 * (256 * 512 + 512 * 304 + 304 * 96)
    assert 3.5 <= report.weight_compression <= 4.1
    # Measured from quanto's inner tensors: int8 data plus one fp32 scale per output row.
    assert report.quantized_weight_bytes_after == (256 * 512 + 512 * 304 + 304 * 96) + 4 * (512 + 304 + 96)
    assert report.bytes_after == module_bytes(model) < report.bytes_before


@pytest.mark.parametrize("qtype", ["qint8", "qfloat8", "qint4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_predicted_bytes_equal_the_measured_bytes(qtype, dtype):
    model = _mlp(dtype)
    shapes = {str(i): (layer.out_features, layer.in_features) for i, layer in enumerate(model) if isinstance(layer, nn.Linear)}
    report = quantize_module(model, qtype, exclude=[])

    predicted = sum(quantized_weight_bytes(*shapes[name], qtype, dtype) for name in report.quantized)
    assert report.quantized_weight_bytes_after == predicted
    assert report.quantized  # every layer here has a shape quanto packs


def test_ltx2_transformer_keeps_conditioning_layers_at_full_precision(make_transformer, transformer_inputs):
    transformer = make_transformer(lora=False)
    with_weights = [name for name, m in transformer.named_modules() if any(True for _ in m.parameters(recurse=False))]
    report = quantize_module(transformer, "qint8", LTX2_TRANSFORMER_EXCLUDE, component="transformer")

    skipped = {entry.name: entry for entry in report.skipped}
    assert sorted(report.quantized + list(skipped)) == sorted(with_weights)
    assert skipped["proj_in"].kind == "excluded" and skipped["audio_proj_out"].kind == "excluded"
    assert skipped["time_embed.emb.timestep_embedder.linear_1"].detail == "pattern 'time_embed'"
    assert skipped["av_cross_attn_video_scale_shift.linear"].kind == "excluded"
    assert skipped["transformer_blocks.0.attn1.norm_q"].detail == "pattern '*norm*'"
    assert skipped[""].kind == "not_linear"  # the root holds scale_shift_table
    # The audio stream is 8 wide here: too few inputs to be worth a scale per row.
    assert skipped["transformer_blocks.0.audio_attn1.to_q"].kind == "too_small"
    assert "transformer_blocks.0.attn1.to_q" in report.quantized
    assert all(name.startswith("transformer_blocks.") for name in report.quantized)
    assert report.skipped_by_kind()["too_small"] == sum(1 for e in report.skipped if e.kind == "too_small")

    video, audio = transformer(**transformer_inputs)
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()


def test_uint4_names_the_supported_qtypes():
    with pytest.raises(QuantizationError) as error:
        quantize_module(_mlp(), "uint4")
    message = str(error.value)
    assert "'qint4'" in message and "qfloat8" in message and "qint8" in message


def test_a_bare_linear_is_refused_with_what_to_pass():
    with pytest.raises(QuantizationError, match="nn.Sequential"):
        quantize_module(nn.Linear(64, 64), "qint8")


def test_lora_trains_on_the_quantized_transformer(make_transformer, transformer_inputs):
    transformer = make_transformer(lora=False)
    quantize_module(transformer, "qint8", LTX2_TRANSFORMER_EXCLUDE, component="transformer")
    from peft import LoraConfig

    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    assert trainable and all(type(p.data) is torch.Tensor for p in trainable)  # adapters, not quantized weights
    optimizer = torch.optim.AdamW(trainable, lr=3e-2)
    generator = torch.Generator().manual_seed(2)
    video_target = torch.randn(transformer_inputs["hidden_states"].shape, generator=generator)

    losses = []
    for _ in range(30):
        video, _audio = transformer(**transformer_inputs)
        loss = torch.nn.functional.mse_loss(video, video_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_quantization_is_traced_per_module_and_summed(traced):
    model = _mlp()
    report = quantize_module(model, "qint8", exclude=["3"], component="transformer")
    records = traced()

    events = [r for r in records if r["type"] == "event" and r["name"] == "quantization"]
    assert [e["fields"]["module"] for e in events] == report.quantized == ["0", "2"]
    assert events[0]["fields"]["bytes_after"] == 256 * 512 + 4 * 512
    end = next(r for r in records if r["type"] == "span_end" and r["name"] == "quantization")
    assert end["fields"]["quantized"] == 2
    assert end["fields"]["skipped"] == {"excluded": 1}
    assert end["fields"]["bytes_after"] == report.bytes_after


def test_lora_adapters_added_before_quantization_stay_full_precision(make_transformer, transformer_inputs):
    from optimum.quanto import QLinear

    transformer = make_transformer()  # LoRA already attached
    report = quantize_module(transformer, "qint8", LTX2_TRANSFORMER_EXCLUDE, component="transformer")

    assert "transformer_blocks.0.attn1.to_q.base_layer" in report.quantized
    assert not [name for name in report.quantized if ".lora_" in name]
    block = transformer.transformer_blocks[0].attn1.to_q
    assert isinstance(block.base_layer, QLinear)
    assert type(block.lora_A["default"]) is nn.Linear and block.lora_A["default"].weight.dtype == torch.float32
    step = run_step(transformer, transformer_inputs)
    assert step["lora_grads"] and all(torch.isfinite(g).all() for g in step["lora_grads"].values())
