"""What a memory plan says: each component's sizes, the LoRA's, the phase totals, what to change (plan.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.memory_management.plan_loading import BlockInFlight, LoadStep
from toolkit.memory_management.plan_phases import PhaseTotal
from toolkit.memory_management.plan_settings import MemoryPlanSettings

GIB = 1024**3
LORA_BYTES_PER_PARAM = {"weights": 4, "grads": 4, "optimizer": 8}
"""fp32 LoRA weights, fp32 gradients, AdamW's exp_avg and exp_avg_sq in fp32."""


@dataclass(frozen=True)
class ComponentPlan:
    """One component's sizes: as stored, as loaded (dtype / qtype), what stays on the host, its largest block.

    host_bytes: what it keeps in host RAM once loaded (its offloaded layers, or all of it when it
    waits there with low_vram); the rest goes to the device as it loads.
    dequantized_bytes: the momentary copies of its largest quantized layer while it runs: the weight
    at the load dtype and the scaled result (quanto's dequantize), 0 when not quantized.
    """

    name: str
    role: str
    class_name: str
    params: int
    dtype: str
    qtype: str | None
    stored_bytes: int
    loaded_bytes: int
    offloaded_bytes: int
    quantized_layers: int
    offloaded_layers: int
    host_bytes: int
    block: BlockInFlight
    dequantized_bytes: int = 0

    @property
    def device_bytes(self) -> int:
        return self.loaded_bytes - self.offloaded_bytes


@dataclass(frozen=True)
class LoraPlan:
    """The adapter on the denoiser's targeted linears (LoRA: rank * (in + out) parameters per layer; LoKr: its
    Kronecker factors), as peft builds it. kind: how it is named ("LoRA", "LoKr")."""

    rank: int
    layers: int
    params: int
    kind: str = "LoRA"
    full_rank: bool = False  # LoKr's lokr_full_rank: the rank is not used

    @property
    def name(self) -> str:
        return f"{self.kind} at full rank" if self.full_rank else f"{self.kind} rank {self.rank}"

    @property
    def weight_bytes(self) -> int:
        return self.params * LORA_BYTES_PER_PARAM["weights"]

    @property
    def grad_bytes(self) -> int:
        return self.params * LORA_BYTES_PER_PARAM["grads"]

    @property
    def optimizer_bytes(self) -> int:
        return self.params * LORA_BYTES_PER_PARAM["optimizer"]


@dataclass
class MemoryPlan:
    """Sizes per component, totals per phase, the budgets they were compared to, and what to change.

    loading: each component's load in order (plan_loading.LoadStep);
    assumptions: one line for each thing the numbers rest on (printed with the plan);
    suggested_settings: `settings` with every suggestion applied (None when nothing was suggested);
    unresolved: one line for each total still over budget with them.
    """

    settings: MemoryPlanSettings
    source: str
    components: dict[str, ComponentPlan]
    lora: LoraPlan
    loading: list[LoadStep]
    phases: list[PhaseTotal]
    device_budget: int | None
    device_budget_source: str
    host_budget: int | None
    host_budget_source: str
    assumptions: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    suggested_settings: MemoryPlanSettings | None = None
    unresolved: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fits(self) -> bool:
        """True when no total exceeds a known budget."""
        return all(phase.over == 0 for phase in self.phases)

    def phase(self, name: str, memory: str) -> PhaseTotal:
        """The total of phase `name` ("loading", "caching prompts", "training", "sampling") in `memory`."""
        for phase in self.phases:
            if phase.phase == name and phase.memory == memory:
                return phase
        raise KeyError(f"no {memory} total for phase {name!r}; phases: {[p.label for p in self.phases]}")
