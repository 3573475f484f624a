"""What every model arch implements: the one interface the toolkit and the processes reach a model through.

The toolkit never imports a model's package, and a process imports only the toolkit. Both ask the
extension registry for the class registered under `model.arch` (`toolkit.extensions.load_model_class`)
and call what is declared here: before any weights load, the class answers for its shape rules, its
LoRA targets, the key names of its LoRA files, its tiny model and its memory plan; once loaded, an
instance runs the phases of training and sampling, in the order they happen below, and answers what
`--inspect` asks of it. What crosses the interface is the toolkit's (toolkit/models/model_inputs.py,
toolkit/models/generation.py), never a model's own types.
Dependencies point down: processes -> this interface -> toolkit.

A second arch (tests/toy_model/) implements this on a two-block transformer and trains, samples and
saves through sd_trainer and generate unchanged.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from toolkit.devices import resolve_device
from toolkit.models.arch_rules import ArchRules
from toolkit.models.generation import GeneratedClip, GenerationSettings
from toolkit.models.lora_keys import BaseModelNames, LoraFileKeys
from toolkit.models.model_inputs import AudioLatents, NoisePrediction, PromptEmbeds, VideoLatents
from toolkit.trace import get_tracer

__all__ = ["BaseModel", "BaseModelNames", "LoraFileKeys"]


class BaseModel(ABC):
    """A model arch: class-level answers needed before loading, and the phases it runs once loaded.

    The class is registered with `toolkit.extensions.register_model_arch(arch, "package.module:Class", rules)`
    and imported only when a job needs it. An instance holds its loaded modules in `components`, by name;
    the denoiser the LoRA attaches to is `components["transformer"]`, and only `replace_transformer`
    changes it, so sampling, placement and the observers read the module that trains.
    """

    arch: ClassVar[str]
    """The `model.arch` this class was written for (a class may be registered under several)."""

    rules: ClassVar[ArchRules]
    """Frame counts, sizes and sampling floor the model takes, and its default sample sizes. The same object is
    registered with the arch (`register_model_arch(..., rules)`), so the config loader and the dataset read
    them through `toolkit.extensions.arch_rules(arch)` without importing this class."""

    timestep_scale: ClassVar[float] = 1.0
    """Noise level (sigma, 0..1) times this is the timestep the denoiser is conditioned on (LTX-2: 1000)."""

    def __init__(self, model_config, device: str = "cpu") -> None:
        self.config = model_config
        self.device = torch.device(resolve_device(device))
        self.components: dict[str, Any] = {}

    @property
    def tracer(self):
        """The per-process tracer at call time: a model built before `init_tracer` (or kept after
        `reset_tracer`) traces to the current one, never to a closed one."""
        return get_tracer()

    # -- before loading: answered by the class, no weights read ------------------------------
    @classmethod
    @abstractmethod
    def lora_target_pattern(cls) -> str:
        """Regular expression (re.fullmatch on module names) of the linear layers a LoRA adapts when
        `network.target_modules` is not set."""

    @classmethod
    @abstractmethod
    def lora_file_keys(cls) -> LoraFileKeys:
        """The key mapping between peft's names and the original LoRA file format (`save.format: comfy`)."""

    @classmethod
    @abstractmethod
    def tiny_names(cls) -> Mapping[str, str]:
        """`model.name_or_path` values that select a small model the project builds locally -> its version."""

    @classmethod
    @abstractmethod
    def ensure_tiny(cls, name: str, cache_dir: str | Path | None = None) -> Path:
        """Build (once, then reuse) the tiny model `name` (one of `tiny_names()`) and return its folder."""

    @classmethod
    @abstractmethod
    def memory_plan_components(cls, settings, roles: Collection[str] | None = None) -> Any:
        """The memory plan's view of the model for `settings` (toolkit.memory_management.plan_settings.
        MemoryPlanSettings): a `plan_components.PlannedModel` with each weight-holding component on the
        meta device, in load order, and its role in a LoRA run. No weights are read. `roles`: only the
        components playing these roles are needed (sizing the LoRA needs only the denoiser); None: all of
        them. A model may return more."""

    @classmethod
    def quantization_excludes(cls) -> Mapping[str, tuple[str, ...]]:
        """Component -> fnmatch patterns of its modules that stay at full precision when it is quantized."""
        return {}

    @classmethod
    def lora_target_problems(cls, model_config, network_config) -> list[tuple[str, str]]:
        """(config key, message) for each LoRA filter that selects no layer; an arch without a check says none."""
        return []

    @classmethod
    def component_problems(cls, model_config) -> list[str]:
        """Before loading: one line per pair of the checkpoint's components that do not belong together (parts of
        different releases: other latent channels, another version's decoder or text encoder), read from their
        configs, no weight read; the dry run reports them as config errors. None by default."""
        return []

    @classmethod
    def checkpoint_report(cls, model_config) -> list[str]:
        """`--dry-run`: lines describing the checkpoint (its version, its components); none by default."""
        return []

    @classmethod
    def checkpoint_version(cls, model_config) -> str | None:
        """The model version the memory plan plans for, or None to plan the settings' default."""
        return None

    # -- what a loaded model holds -----------------------------------------------------------
    @property
    def transformer(self) -> torch.nn.Module:
        """The denoiser as it runs now: the module the LoRA attaches to (wrapped by FSDP once sharded). The toolkit
        attaches the LoRA through diffusers' `PeftAdapterMixin` (`add_adapter`, `enable_adapters`, `disable_adapters`),
        so the transformer is one (every diffusers model is)."""
        return self.components["transformer"]

    def replace_transformer(self, module: torch.nn.Module) -> None:
        """Put `module` (the transformer wrapped, e.g. sharded by FSDP) where every reader of the transformer
        finds it: prediction, sampling, placement and the observers all read `components["transformer"]`."""
        self.components["transformer"] = module

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the transformer's activations in the backward (`train.gradient_checkpointing`); this default
        asks the transformer (diffusers' `ModelMixin.enable_gradient_checkpointing`)."""
        self.transformer.enable_gradient_checkpointing()

    @property
    @abstractmethod
    def audio_sample_rate(self) -> int:
        """The rate the audio encoder takes; clips are resampled to it as they are decoded."""

    @property
    @abstractmethod
    def max_sequence_length(self) -> int:
        """Prompt tokens kept (longer prompts are cut); part of what the text-embedding cache keys on."""

    @abstractmethod
    def encoder_identity(self) -> str:
        """What the latent cache keys on: whatever makes two encoders give different latents for one clip."""

    @abstractmethod
    def text_encoder_identity(self) -> str:
        """What the text-embedding cache keys on: whatever makes two text encoders give different embeddings."""

    def metadata(self) -> dict[str, str]:
        """Strings describing the base model for a saved LoRA's header and the run's state.json (a resume
        refuses a save whose `*_version` differs)."""
        return {}

    def base_model_names(self) -> BaseModelNames | None:
        """How LoRA browsers name this (loaded) base model; None when the arch does not say."""
        return None

    # -- the phases, in the order they happen ------------------------------------------------
    @abstractmethod
    def load_model(self, defer_text_encoder: bool = False) -> BaseModel:
        """Read every component, place it on its device and dtype, freeze it; returns self. `defer_text_encoder`
        allows reading the text encoder at the first `get_prompt_embeds` instead (a run whose prompts all come from
        the cache then never reads it); a model that cannot defer reads it now."""

    @abstractmethod
    def encode_images(self, video: torch.Tensor, clip: str | None = None) -> VideoLatents:
        """Frames (B, 3, T, H, W) in [-1, 1] to normalised video latents (B, C, F, H', W'); `clip` names the
        frames in reports and errors."""

    @abstractmethod
    def encode_audio(
        self, waveform: torch.Tensor, sample_rate: int, is_silence: list[bool] | None = None
    ) -> AudioLatents:
        """A waveform (B, channels, samples) at `sample_rate` to normalised audio latents (B, C, L, M)."""

    @abstractmethod
    def get_prompt_embeds(self, prompts: list[str], keep_text_states: bool = False) -> PromptEmbeds:
        """Prompts to what the denoiser attends to; with `keep_text_states` also what sampling reads besides
        (`PromptEmbeds.for_sampling`)."""

    @abstractmethod
    def unload_text_encoder(self) -> None:
        """Free the text encoder once every prompt it is needed for is encoded; `get_prompt_embeds` then fails."""

    @abstractmethod
    def offload_transformer(self) -> Any:
        """With `model.layer_offloading`: keep a share of the transformer's layers in host RAM (called after the
        LoRA is attached); returns the offload report, or None when offloading is off."""

    @abstractmethod
    def get_noise_prediction(
        self,
        video_latents: torch.Tensor,
        audio_latents: torch.Tensor,
        sigmas: torch.Tensor,
        prompt: PromptEmbeds,
        fps: float | Sequence[float],
        video_sigmas: torch.Tensor | None = None,
    ) -> NoisePrediction:
        """The denoiser's velocity for noisy video (B, C, F, H, W) and audio (B, C, L, M) latents at noise levels
        `sigmas` (B,); `video_sigmas` (B, video tokens) overrides them per token (image-to-video keeps the first
        frame's at 0); `fps` is one frame rate for the batch or one per clip."""

    @abstractmethod
    def generate_single_image(
        self,
        prompt: str,
        output_path: str | Path,
        settings: GenerationSettings,
        prompt_embeds: PromptEmbeds | None = None,
        negative_embeds: PromptEmbeds | None = None,
    ) -> GeneratedClip:
        """Sample one clip with audio for `prompt` and write it to `output_path` (an .mp4, atomically).
        `prompt_embeds` / `negative_embeds` (encoded with `keep_text_states`) spare the text encoder, which
        may be unloaded by then."""

    def save_model(
        self,
        output_path: str | Path,
        lora_state: dict[str, torch.Tensor],
        fmt: str,
        dtype: torch.dtype,
        metadata: dict,
        alpha: float,
        fold_strength: bool = True,
        rank: int | None = None,
    ) -> Path:
        """Write a LoRA trained on this model as one .safetensors file, atomically: every LoRA file a run writes
        goes through here (seed 000's `save_model` trace point). The file format, `fold_strength` and the
        refusal of non-finite weights are `toolkit.network.formats.save_lora`'s; the model gives its key names
        (`lora_file_keys`, for `fmt="comfy"`) and its `metadata()` for the header."""
        from toolkit.network.formats import save_lora

        output_path = Path(output_path)
        with self.tracer.span(
            "save_model", output=output_path, format=fmt, dtype=dtype, step=metadata.get("step"), tensors=len(lora_state)
        ) as span:
            started = time.perf_counter()
            save_lora(
                output_path, lora_state, fmt, dtype, {**self.metadata(), **metadata}, alpha, fold_strength, rank,
                keys=self.lora_file_keys(),
            )
            span.set(
                files=[output_path],
                bytes=output_path.stat().st_size,
                strength_folded=fold_strength,
                seconds=time.perf_counter() - started,
            )
        return output_path

    # -- what `--inspect` asks (sd_trainer's inspection callback) -----------------------------
    @abstractmethod
    def describe_prompt_tokens(self, text: str) -> dict[str, Any]:
        """What the text encoder gets of `text`: tokens kept, cut, padding, the kept sequence decoded
        (`toolkit.monitoring.inspection.token_summary` for a Hugging Face tokenizer)."""

    @abstractmethod
    def attention_modules(self) -> dict[str, torch.nn.Module]:
        """The cross-attention modules the inspection probes (`toolkit.monitoring.attention_stats.AttentionProbe`),
        by the name it reports each under (LTX-2: "transformer_blocks.0.text_to_video", ...)."""

    @abstractmethod
    def decode_video(self, video_latents: torch.Tensor) -> torch.Tensor:
        """Normalised video latents (B, C, F, H, W) to frames (B, 3, T, H', W') in [-1, 1]."""

    @abstractmethod
    def decode_audio(self, audio_latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Normalised audio latents (B, C, L, M) to a waveform (B, channels, samples) in [-1, 1] and its rate."""
