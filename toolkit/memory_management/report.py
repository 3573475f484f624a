"""What `MemoryManager.attach` did: which layers live on the host, which on the device."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ManagedModule:
    """A layer whose weights stay in host memory and visit `compute_device` only while it runs."""

    name: str
    kind: str  # "linear" or "conv"
    weight_device: str
    compute_device: str
    bytes: int
    pinned: bool
    quantized: bool


@dataclass(frozen=True)
class UnmanagedModule:
    """A module with its own weights or buffers that was moved to the device as a whole, and why."""

    name: str
    reason: str
    device: str


@dataclass
class OffloadReport:
    """Layer offloading of one model.

    linear_layers / conv_layers count every Linear and Conv layer that offloading could take
    (LoRA adapter layers and ignored modules excluded); the offload percents are shares of
    their parameter bytes. bytes_on_host is what the managed layers keep in host memory
    (their parameters; their buffers, if any, move to the device).
    """

    device: str
    offload_percent_asked: float
    offload_percent_achieved: float = 0.0
    linear_layers: int = 0
    conv_layers: int = 0
    managed: list[ManagedModule] = field(default_factory=list)
    unmanaged: list[UnmanagedModule] = field(default_factory=list)
    bytes_on_host: int = 0
    offloadable_bytes: int = 0

    @property
    def managed_names(self) -> list[str]:
        return [module.name for module in self.managed]

    @property
    def managed_linear(self) -> int:
        return sum(1 for module in self.managed if module.kind == "linear")

    @property
    def managed_conv(self) -> int:
        return sum(1 for module in self.managed if module.kind == "conv")

    def counts(self) -> dict[str, int]:
        """The numbers a trace or a log line shows."""
        return {
            "linear_layers": self.linear_layers,
            "conv_layers": self.conv_layers,
            "managed": len(self.managed),
            "managed_linear": self.managed_linear,
            "managed_conv": self.managed_conv,
            "unmanaged": len(self.unmanaged),
        }
