"""`model:` section: which checkpoint, in which dtype, quantized or offloaded how, traced how."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from toolkit.config.base import ConfigModel, Precision, QuantizationType, check_device
from toolkit.extensions import arch_rules, default_arch, registered_archs
from toolkit.models.arch_rules import ArchRules


class ModelConfig(ConfigModel):
    """The base model a process loads, and how it is placed in memory."""

    name_or_path: str = Field(
        description=(
            "Hugging Face repo id (read from its snapshot in the local Hugging Face cache, without asking the hub; "
            "the files a run reads are downloaded once when the cache lacks them), local diffusers folder or "
            "single-file .safetensors of the checkpoint; the name "
            "of one of the arch's tiny models means that small model, built locally (no download): e.g. for LTX-2 "
            "'tiny-ltx2' (LTX-2.0), 'tiny-ltx2.3' or 'tiny-ltx2.5'."
        )
    )
    base_model_path: str | None = Field(
        default=None,
        description=(
            "With a single-file `name_or_path`: the diffusers folder or hub id that supplies the components the "
            "file does not hold (text encoder, tokenizer and scheduler; connectors or vocoder only if the file lacks them)."
        ),
    )
    arch: str = Field(default_factory=default_arch, description="Model architecture, as registered by an extension.")
    max_sequence_length: int | None = Field(
        default=None,
        ge=1,
        description="Prompt tokens kept (longer prompts are truncated); default: the tokenizer's limit, at most 1024.",
    )
    verbose: bool = Field(
        default=False,
        description="Trace model and trainer internals ([VERBOSE] console lines, trace.jsonl, trace.json).",
    )
    dtype: Precision = Field(default="bf16", description="Dtype of the transformer and VAEs.")
    te_dtype: Precision | None = Field(default=None, description="Dtype of the text encoder; defaults to `dtype`.")
    te_device: str | None = Field(
        default=None, description="Device of the text encoder; defaults to the process `device`."
    )
    quantize: bool = Field(default=False, description="Quantize the transformer weights with optimum-quanto.")
    qtype: QuantizationType = Field(default="qfloat8", description="Weight type when `quantize` is on.")
    quantize_te: bool = Field(default=False, description="Quantize the text encoder weights with optimum-quanto.")
    qtype_te: QuantizationType = Field(default="qfloat8", description="Weight type when `quantize_te` is on.")
    layer_offloading: bool = Field(
        default=False, description="Keep layers in host RAM and move each to the device only while it runs."
    )
    layer_offloading_transformer_percent: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Fraction of transformer layers offloaded (0..1)."
    )
    layer_offloading_text_encoder_percent: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Fraction of text encoder layers offloaded (0..1)."
    )
    vram_gb: float | None = Field(
        default=None,
        gt=0,
        description=(
            "GPU memory (GiB) the memory plan checks against when it cannot read it from a visible GPU, "
            "e.g. `--dry-run` on a laptop for a 24 GB training box."
        ),
    )
    ram_gb: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Host RAM (GiB) the memory plan checks against instead of the RAM available on this machine now, "
            "e.g. `--dry-run` on a laptop for a training box with 32 GB."
        ),
    )
    compile: bool = Field(
        default=False,
        description="Compile the transformer with torch.compile (slower start, faster steps on a GPU).",
    )
    low_vram: bool = Field(default=False, description="Load components one at a time and keep idle ones in host RAM.")
    vae_tiling: bool = Field(default=False, description="Encode and decode video in tiles to bound VAE memory.")
    trace_every: int = Field(
        default=10, ge=1, description="With `verbose`, hot loops (each training step) are traced every N steps."
    )
    trace_first_steps: int = Field(
        default=3, ge=0, description="With `verbose`, the first N steps are always traced."
    )
    heartbeat_s: float = Field(
        default=30.0,
        ge=0.0,
        description="With `verbose`, a phase still running after this many seconds prints a heartbeat line.",
    )

    @field_validator("arch")
    @classmethod
    def _arch_is_registered(cls, arch: str) -> str:
        known = registered_archs()
        if arch not in known:
            raise ValueError(f"unknown model arch {arch!r} (registered: {', '.join(known) or 'none'})")
        return arch

    def arch_rules(self) -> ArchRules:
        """The shape rules `arch` registered (frame counts, sizes, defaults), read without importing the model."""
        return arch_rules(self.arch)

    @field_validator("te_device")
    @classmethod
    def _te_device_is_known(cls, device: str | None) -> str | None:
        return None if device is None else check_device(device)

    @model_validator(mode="after")
    def _text_encoder_dtype_follows_dtype(self) -> ModelConfig:
        if self.te_dtype is None:
            self.te_dtype = self.dtype
        return self
