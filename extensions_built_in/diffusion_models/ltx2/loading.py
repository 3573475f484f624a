"""Loading LTX-2's components one by one: dtype, quantization, device, offloading; and tracing what is skipped."""

from __future__ import annotations

import time

import torch

from toolkit.trace import get_tracer

from . import placement, streaming
from .checkpoint import check_all_loaded, load_component, loading_errors
from .checkpoint_configs import unused_components
from .variant import EXTRA_COMPONENTS


def load_one(model, name: str):
    """Load component `name`, quantize it if asked, put it on its device (and offload the text encoder's
    layers if asked); traced as `load_component` with the facts of what was loaded."""
    config = model.config
    dtype = model.te_dtype if name == "text_encoder" else model.dtype
    if name in ("vae", "audio_vae", "vocoder"):
        # The VAEs and vocoder stay in fp32: they are small and their decode is where reduced
        # precision shows (banding, clicks).
        dtype = torch.float32
    with get_tracer().span("load_component", component=name) as span:
        started = time.perf_counter()
        with loading_errors(model.source, name):
            plan = streaming.plan_stream(model.source, name, dtype)
            if plan.model is not None:
                component, report, read = _stream(model, plan, dtype)
        streamed = plan.model is not None
        if streamed:
            check_all_loaded(model.source, name, component)
            span.set(streamed=True, **read.facts())
        else:
            component = load_component(model.source, name, dtype)
            report = None
            if isinstance(component, torch.nn.Module):
                component.requires_grad_(False).eval()
                report = placement.quantize_after_load(name, component, config)
            if name in streaming.STREAMED_COMPONENTS:
                span.set(streamed=False, why_not_streamed=plan.reason)
        if isinstance(component, torch.nn.Module):
            if report is not None:
                span.set(
                    qtype=report.qtype,
                    quantized_modules=len(report.quantized),
                    bytes_before=report.bytes_before,
                    bytes_after=report.bytes_after,
                )
            if not (streamed and name == "transformer" and placement.splits_transformer(config, model.device)):
                # (a split transformer is already where each block belongs; the MemoryManager settles the rest)
                component.to(placement.load_device(name, config, model.device, model.te_device))
            if name == "text_encoder" and config.layer_offloading and config.layer_offloading_text_encoder_percent > 0:
                offload = placement.offload_layers(name, component, model.te_device, config.layer_offloading_text_encoder_percent)
                span.set(offload_percent=offload.offload_percent_achieved, bytes_on_host=offload.bytes_on_host)
            span.set(**_module_facts(component), seconds=time.perf_counter() - started)
        else:
            span.set(cls=type(component).__name__, seconds=time.perf_counter() - started)
    return component


def _stream(model, plan: streaming.StreamPlan, dtype: torch.dtype):
    """Stream a component in, quantizing each block when the config asks; (component, quantization report, read report)."""
    from toolkit.quantize import quantize_while_loading

    name, config = plan.component, model.config
    device = placement.load_device(name, config, model.device, model.te_device)
    if name == "transformer":
        device = placement.offload_split(config, model.device, len(plan.model.transformer_blocks)) or device
    quantize, qtype = (config.quantize, config.qtype) if name == "transformer" else (config.quantize_te, config.qtype_te)
    if not quantize:
        component, read = streaming.stream_component(plan, dtype, None, device)
        return component, None, read
    with quantize_while_loading(plan.model, qtype, exclude=model.quantization_excludes().get(name, ()), component=name) as (quantize_block, report):
        component, read = streaming.stream_component(plan, dtype, quantize_block, device)
    return component, report, read


def files_read(source, names: tuple[str, ...]) -> dict:
    """The weight files the components `names` are read from, and their bytes, for the load_model span."""
    from pathlib import Path

    from toolkit.memory_management.streamed_loading import safetensors_files

    files: list[Path] = []
    if source.single_file_components:
        files.append(Path(source.location))
    for name in names:
        if name not in source.single_file_components:
            files.extend(safetensors_files(Path(source.base) / name))
    return {"files": [str(path) for path in files], "bytes": sum(path.stat().st_size for path in files)}


def trace_skipped(base: str, loaded: tuple[str, ...]) -> None:
    """Components model_index.json lists that a LoRA run does not load (2.5's prompt enhancer, duration head...)."""
    tracer = get_tracer()
    for name, cls in unused_components(base, loaded).items():
        tracer.event(
            "component_skipped",
            component=name,
            cls=cls,
            what=EXTRA_COMPONENTS.get(name, "not an LTX2Pipeline component"),
            reason="a LoRA run neither trains nor samples with it; left unloaded",
        )


def _module_facts(module: torch.nn.Module) -> dict:
    first = next(module.parameters(), None)
    return {
        "cls": type(module).__name__,
        "params": sum(p.numel() for p in module.parameters()),
        "dtype": first.dtype if first is not None else None,
        "device": first.device if first is not None else None,
    }
