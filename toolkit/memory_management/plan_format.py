"""The memory plan as text: a component table, the LoRA line, phase totals against budgets, advice."""

from __future__ import annotations

from toolkit.memory_management.plan_result import GIB, MemoryPlan

COMPONENT_HEADER = ("component", "class", "params", "dtype", "stored", "loaded", "device", "offloaded", "quantized")
LOADING_HEADER = ("component", "on host before", "kept on host", "largest block in flight", "host peak", "to device")
PHASE_HEADER = ("phase", "memory", "total", "budget", "status", "largest parts")


def format_plan(plan: MemoryPlan) -> str:
    """The plan as a readable table: components, LoRA, phase totals against budgets, what to change."""
    return "\n".join(plan_lines(plan))


def plan_lines(plan: MemoryPlan) -> list[str]:
    settings = plan.settings
    offloading = (
        f"on (transformer {settings.layer_offloading_transformer_percent:g}, "
        f"text encoder {settings.layer_offloading_text_encoder_percent:g})"
        if settings.layer_offloading
        else "off"
    )
    lines = [
        f"Memory plan for {plan.source} ({plan.seconds:.1f} s, no weights read)",
        f"  dtype {settings.dtype}, transformer {settings.qtype if settings.quantize else 'not quantized'}, "
        f"text encoder {settings.qtype_te if settings.quantize_te else 'not quantized'}, layer offloading {offloading}, "
        f"low_vram {'on' if settings.low_vram else 'off'}, {plan.lora.name}",
        "",
    ]
    rows = [COMPONENT_HEADER]
    for component in plan.components.values():
        rows.append(
            (
                component.name,
                component.class_name,
                _params(component.params),
                component.qtype or component.dtype,
                format_size(component.stored_bytes),
                format_size(component.loaded_bytes),
                format_size(component.device_bytes),
                f"{format_size(component.offloaded_bytes)} ({component.offloaded_layers} layers)",
                str(component.quantized_layers),
            )
        )
    lines += _table(rows)
    lora = plan.lora
    lines += [
        "",
        f"{lora.name} on {lora.layers} linears: {_params(lora.params)} parameters; weights "
        f"{format_size(lora.weight_bytes)}, gradients {format_size(lora.grad_bytes)}, AdamW state {format_size(lora.optimizer_bytes)}",
        "",
    ]
    rows = [PHASE_HEADER]
    for phase in plan.phases:
        status = "unknown" if phase.budget is None else ("ok" if phase.over == 0 else f"OVER by {format_size(phase.over)}")
        largest = sorted(phase.parts, key=lambda part: -part[1])[:3]
        rows.append(
            (
                phase.label,
                phase.memory,
                format_size(phase.total),
                "?" if phase.budget is None else format_size(phase.budget),
                status,
                ", ".join(f"{name} {format_size(size)}" for name, size in largest if size),
            )
        )
    lines += _table(rows)
    lines += ["", "Loading, component by component (host RAM):"]
    rows = [LOADING_HEADER]
    for step in plan.loading:
        rows.append(
            (
                step.component,
                format_size(step.resident_before),
                format_size(step.host_share),
                f"{format_size(step.block.total)} ({step.block.name})",
                format_size(step.host_peak),
                format_size(step.device_share),
            )
        )
    lines += _table(rows)
    lines += ["", "Assumed:"] + [f"- {line}" for line in plan.assumptions]
    lines += [
        "",
        f"Device budget: {plan.device_budget_source}. Host budget: {plan.host_budget_source}.",
        "Not included: activations (they grow with resolution, frames and batch size) and the CUDA context.",
    ]
    if plan.suggestions:
        lines.append("To fit: " + "; ".join(plan.suggestions) + ".")
    lines += [f"Still short: {line}" for line in plan.unresolved]
    return lines


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def format_size(size: int) -> str:
    """Bytes in GiB, or MiB / KiB / B for the small components of a tiny model."""
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def _params(count: int) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.2f} B"
    if count >= 1e6:
        return f"{count / 1e6:.2f} M"
    return f"{count / 1e3:.1f} K"
