"""MemoryManager: offloaded layers give the same outputs and gradients, in the asked share."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.memory.conftest import run_step
from toolkit.memory_management import MemoryManager, OffloadError, parameter_bytes
from toolkit.quantize import quantize_module
from extensions_built_in.diffusion_models.ltx2.quantization_excludes import LTX2_TRANSFORMER_EXCLUDE

def _assert_same_step(step: dict, reference: dict) -> None:
    torch.testing.assert_close(step["video"], reference["video"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(step["audio"], reference["audio"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(step["input_grad"], reference["input_grad"], rtol=1e-5, atol=1e-6)
    assert step["lora_grads"].keys() == reference["lora_grads"].keys()
    for name, grad in reference["lora_grads"].items():
        torch.testing.assert_close(step["lora_grads"][name], grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("offload_percent", [0.0, 0.5, 1.0])
def test_outputs_and_lora_gradients_equal_the_run_without_offloading(
    offload_percent, make_transformer, transformer_inputs, reference_step
):
    transformer = make_transformer()
    report = MemoryManager.attach(transformer, "cpu", offload_percent)

    assert len(report.managed) == {0.0: 0, 0.5: len(report.managed), 1.0: report.linear_layers}[offload_percent]
    _assert_same_step(run_step(transformer, transformer_inputs), reference_step)


def test_lora_wraps_are_managed_through_their_base_layer(make_transformer):
    transformer = make_transformer()
    report = MemoryManager.attach(transformer, "cpu", 1.0)

    managed = set(report.managed_names)
    assert "transformer_blocks.0.attn1.to_q.base_layer" in managed
    assert not [name for name in managed if ".lora_" in name]
    reasons = {entry.name: entry.reason for entry in report.unmanaged}
    assert reasons["transformer_blocks.0.attn1.to_q.lora_A.default"].startswith("LoRA adapter")
    assert reasons["transformer_blocks.0.attn1.norm_q"] == "not an offloadable Linear or Conv (RMSNorm)"


def test_report_counts_match_the_module_tree(make_transformer):
    transformer = make_transformer()
    adapters = {id(m) for name, m in transformer.named_modules() if ".lora_" in name}
    linears = [m for m in transformer.modules() if type(m) is nn.Linear and id(m) not in adapters]
    with_tensors = [m for m in transformer.modules() if list(m.parameters(recurse=False)) or list(m.buffers(recurse=False))]
    report = MemoryManager.attach(transformer, "cpu", 0.5)

    assert report.linear_layers == len(linears) and report.conv_layers == 0
    assert len(report.managed) + len(report.unmanaged) == len(with_tensors)
    assert report.managed_linear == len(report.managed) > 0
    assert report.offloadable_bytes == sum(parameter_bytes(m, recurse=False) for m in linears)
    assert report.bytes_on_host == sum(entry.bytes for entry in report.managed)
    assert report.offload_percent_achieved == pytest.approx(report.bytes_on_host / report.offloadable_bytes)
    assert {entry.reason for entry in report.unmanaged} >= {"beyond the offload share"}


@pytest.mark.parametrize("offload_percent", [0.0, 0.1, 0.3, 0.5, 0.77, 1.0])
def test_achieved_share_is_within_one_layer_of_the_asked_one(offload_percent, make_transformer):
    transformer = make_transformer()
    layer_sizes = [
        parameter_bytes(m, recurse=False)
        for name, m in transformer.named_modules()
        if type(m) is nn.Linear and ".lora_" not in name
    ]
    report = MemoryManager.attach(transformer, "cpu", offload_percent)

    gap = abs(report.offload_percent_achieved - offload_percent) * report.offloadable_bytes
    assert gap <= max(layer_sizes)
    # Layers are taken in module order: the managed ones are the first offloadable ones.
    order = [name for name, m in transformer.named_modules() if type(m) is nn.Linear and ".lora_" not in name]
    assert report.managed_names == order[: len(report.managed)]


def test_offloaded_layers_keep_no_tensor_between_forward_and_backward():
    """Frozen weights: autograd saves nothing of a managed layer, so no device copy outlives its forward."""
    layer = nn.Sequential(nn.Linear(8, 8)).requires_grad_(False)
    MemoryManager.attach(layer, "cpu", 1.0)
    inputs = torch.randn(2, 8, requires_grad=True)
    output = layer(inputs)
    assert type(output.grad_fn).__name__ == "_OffloadedCallBackward"
    assert output.grad_fn.saved_tensors == ()


def test_full_weight_gradients_and_convolutions_are_exact():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(8, 4, 1),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    )
    offloaded = copy.deepcopy(model)
    images = torch.randn(2, 3, 6, 6)
    model(images).square().sum().backward()
    report = MemoryManager.attach(offloaded, "cpu", 1.0)
    offloaded(images).square().sum().backward()

    assert (report.conv_layers, report.linear_layers, report.managed_conv) == (2, 1, 2)
    for expected, got in zip(model.parameters(), offloaded.parameters()):
        torch.testing.assert_close(got.grad, expected.grad)


def test_autocast_is_replayed_in_backward(make_transformer, transformer_inputs):
    """A trainer runs forward under autocast and backward outside it; the recompute must match."""

    def lora_grads(transformer: nn.Module) -> dict:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            video, audio = transformer(**transformer_inputs)
        (video.float().square().mean() + audio.float().square().mean()).backward()
        return {name: p.grad for name, p in transformer.named_parameters() if p.requires_grad}

    reference = lora_grads(make_transformer())
    transformer = make_transformer()
    MemoryManager.attach(transformer, "cpu", 1.0)
    grads = lora_grads(transformer)
    for name, grad in reference.items():
        torch.testing.assert_close(grads[name], grad)


def test_quantized_layers_are_offloaded_too(make_transformer, transformer_inputs):
    reference_model = make_transformer()
    quantize_module(reference_model, "qint8", LTX2_TRANSFORMER_EXCLUDE, component="transformer")
    reference = run_step(reference_model, transformer_inputs)
    transformer = make_transformer()
    quantize_module(transformer, "qint8", LTX2_TRANSFORMER_EXCLUDE, component="transformer")
    report = MemoryManager.attach(transformer, "cpu", 1.0)

    quantized = [entry for entry in report.managed if entry.quantized]
    assert quantized and not any(entry.pinned for entry in quantized)
    _assert_same_step(run_step(transformer, transformer_inputs), reference)


def test_detach_restores_an_ordinary_model(make_transformer, transformer_inputs, reference_step):
    transformer = make_transformer()
    MemoryManager.attach(transformer, "cpu", 1.0)
    MemoryManager.detach(transformer)

    assert MemoryManager.report_of(transformer) is None
    assert "forward" not in transformer.transformer_blocks[0].ff.net[2].base_layer.__dict__
    _assert_same_step(run_step(transformer, transformer_inputs), reference_step)
    MemoryManager.attach(transformer, "cpu", 0.5)  # attachable again


def test_attach_refuses_twice_and_bad_percents(make_transformer):
    transformer = make_transformer()
    with pytest.raises(OffloadError, match="between 0.0"):
        MemoryManager.attach(transformer, "cpu", 1.5)
    MemoryManager.attach(transformer, "cpu", 0.5)
    with pytest.raises(OffloadError, match="detach"):
        MemoryManager.attach(transformer, "cpu", 0.5)


def test_ignored_modules_stay_on_the_device(make_transformer):
    transformer = make_transformer()
    report = MemoryManager.attach(transformer, "cpu", 1.0, ignore_modules=["transformer_blocks.1"])

    assert not [name for name in report.managed_names if name.startswith("transformer_blocks.1.")]
    ignored = [e for e in report.unmanaged if e.reason == "ignored by pattern 'transformer_blocks.1'"]
    assert "transformer_blocks.1.ff.net.2.base_layer" in {e.name for e in ignored}


def test_attach_is_traced(make_transformer, traced):
    transformer = make_transformer()
    report = MemoryManager.attach(transformer, "cpu", 0.5)
    records = traced()

    events = [r for r in records if r["name"] == "MemoryManager.offload"]
    assert [e["fields"]["module"] for e in events] == report.managed_names
    end = next(r for r in records if r["type"] == "span_end" and r["name"] == "MemoryManager.attach")
    assert end["fields"]["linear_layers"] == report.linear_layers
    assert end["fields"]["unmanaged"] == len(report.unmanaged)
    assert end["fields"]["offload_percent_achieved"] == round(report.offload_percent_achieved, 4)


def test_offloadable_layers_are_known_without_importing_quanto_until_something_is_quantized(monkeypatch):
    """A run that quantizes nothing never imports optimum-quanto for the check (45 ms of its start); once quanto is
    imported, its QLinear is a linear layer as nn.Linear is."""
    import sys

    from optimum.quanto import QLinear, qint8

    from toolkit.memory_management.selection import offloadable_kind

    quanto_modules = {name: module for name, module in sys.modules.items() if name.startswith("optimum.quanto")}
    for name in quanto_modules:
        monkeypatch.delitem(sys.modules, name)
    kinds = [offloadable_kind(layer) for layer in (nn.Linear(2, 2), nn.Conv3d(1, 1, 1), nn.LayerNorm(2), nn.Embedding(3, 2))]
    assert kinds == ["linear", "conv", None, None]
    assert "optimum.quanto" not in sys.modules
    for name, module in quanto_modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    assert offloadable_kind(QLinear.from_module(nn.Linear(4, 4), weights=qint8)) == "linear"
    assert offloadable_kind(type("SubLinear", (nn.Linear,), {})(2, 2)) is None  # exact classes only
