"""The settings a memory plan depends on, checked, and what each component role is loaded as under them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from toolkit.extensions import default_arch
from toolkit.memory_management.errors import MemoryPlanError
from toolkit.memory_management.selection import check_offload_percent

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
ADAPTER_KINDS = {"lora": "LoRA", "lokr": "LoKr"}
"""`network.type` -> how the plan names it."""


@dataclass(frozen=True)
class MemoryPlanSettings:
    """The settings a memory plan depends on; names follow the job config's `model:` and `network:`.

    arch: `model.arch` (default: the registered default arch); its registered model class provides the
    components (`memory_plan_components`).
    name_or_path: what the model class reads configs from (a local folder, a tiny model's name), or
    anything else (hub id, single file, None) for the published architecture of `version`.
    version: the model version to plan (e.g. LTX-2: "2.0", "2.3", "2.5"); None: the one `arch` names.
    stored_dtype: the checkpoint's dtype when no folder is read (the published one is bf16).
    vae_dtype: dtype of the decoders (VAEs, vocoder; e.g. the LTX-2 loader keeps them fp32).
    device_is_host: the run computes on the CPU, so every component stays in host RAM as it loads.
    lora_rank, network_type, target_modules, exclude_modules, lokr_full_rank, lokr_factor: the adapter
    (`network.linear`, `network.type` ...); None targets: the model's default LoRA targets.
    """

    name_or_path: str | None = None
    arch: str = field(default_factory=default_arch)
    version: str | None = None
    dtype: str = "bf16"
    te_dtype: str | None = None
    vae_dtype: str = "fp32"
    stored_dtype: str = "bf16"
    quantize: bool = False
    qtype: str = "qfloat8"
    quantize_te: bool = False
    qtype_te: str = "qfloat8"
    layer_offloading: bool = False
    layer_offloading_transformer_percent: float = 1.0
    layer_offloading_text_encoder_percent: float = 1.0
    low_vram: bool = False
    lora_rank: int = 16
    network_type: str = "lora"
    target_modules: tuple[str, ...] | None = None
    exclude_modules: tuple[str, ...] = ()
    lokr_full_rank: bool = False
    lokr_factor: int = -1
    device_is_host: bool = False

    @classmethod
    def from_config(cls, model, network=None) -> MemoryPlanSettings:
        """Settings from a job's `model` (and `network`) config objects, read by attribute."""
        return cls(
            name_or_path=model.name_or_path,
            arch=getattr(model, "arch", None) or default_arch(),
            dtype=model.dtype,
            te_dtype=model.te_dtype,
            quantize=model.quantize,
            qtype=model.qtype,
            quantize_te=model.quantize_te,
            qtype_te=model.qtype_te,
            layer_offloading=model.layer_offloading,
            layer_offloading_transformer_percent=model.layer_offloading_transformer_percent,
            layer_offloading_text_encoder_percent=model.layer_offloading_text_encoder_percent,
            low_vram=model.low_vram,
            **({} if network is None else cls._adapter_fields(network)),
        )

    @staticmethod
    def _adapter_fields(network) -> dict:
        return {
            "lora_rank": network.linear,
            "network_type": network.type,
            "target_modules": tuple(network.target_modules) if network.target_modules else None,
            "exclude_modules": tuple(network.exclude_modules),
            "lokr_full_rank": network.lokr_full_rank,
            "lokr_factor": network.lokr_factor,
        }

    def network_config(self):
        """The adapter settings as the job's `network` config (toolkit.config.NetworkConfig), which
        toolkit.network sizes the adapter from."""
        from toolkit.config.network import NetworkConfig

        return NetworkConfig(
            type=self.network_type,
            linear=self.lora_rank,
            target_modules=list(self.target_modules) if self.target_modules else None,
            exclude_modules=list(self.exclude_modules),
            lokr_full_rank=self.lokr_full_rank,
            lokr_factor=self.lokr_factor,
        )


def role_settings(role: str, settings: MemoryPlanSettings) -> tuple[str, str | None, float]:
    """(dtype, qtype or None, offload percent) of a component playing `role` under `settings`."""
    offloading = settings.layer_offloading
    if role == "denoiser":
        percent = settings.layer_offloading_transformer_percent if offloading else 0.0
        return settings.dtype, settings.qtype if settings.quantize else None, percent
    if role == "text_encoder":
        percent = settings.layer_offloading_text_encoder_percent if offloading else 0.0
        return settings.te_dtype or settings.dtype, settings.qtype_te if settings.quantize_te else None, percent
    if role == "prompt_adapter":
        return settings.dtype, None, 0.0
    return settings.vae_dtype, None, 0.0


def check_settings(settings: MemoryPlanSettings) -> None:
    """Raise the error a user can act on for a setting the plan cannot use."""
    from toolkit.memory_management.quantized_sizes import resolve_qtype

    for setting in ("dtype", "vae_dtype", "stored_dtype"):
        _check_dtype(setting, getattr(settings, setting))
    if settings.te_dtype is not None:
        _check_dtype("te_dtype", settings.te_dtype)
    if settings.quantize:
        resolve_qtype(settings.qtype)
    if settings.quantize_te:
        resolve_qtype(settings.qtype_te)
    for setting in ("layer_offloading_transformer_percent", "layer_offloading_text_encoder_percent"):
        check_offload_percent(getattr(settings, setting), setting=f"model.{setting}")
    if settings.lora_rank < 1:
        raise MemoryPlanError(f"memory plan: network.linear (LoRA rank) is {settings.lora_rank}; it must be 1 or more.")
    if settings.network_type not in ADAPTER_KINDS:
        raise MemoryPlanError(f"memory plan: network.type is {settings.network_type!r}; use one of {', '.join(ADAPTER_KINDS)}.")


def dtype_bytes(dtype: str) -> int:
    return torch.empty((), dtype=DTYPES[dtype], device="meta").element_size()


def _check_dtype(setting: str, value: str) -> None:
    if value not in DTYPES:
        raise MemoryPlanError(f"memory plan: {setting} is {value!r}; use one of {', '.join(DTYPES)}.")
