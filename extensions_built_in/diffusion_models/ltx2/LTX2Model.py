"""LTX2Model: the LTX-2 audio+video model, phase by phase, in the order they happen.

load_model -> encode_images / encode_audio -> get_prompt_embeds -> unload_text_encoder ->
get_noise_prediction -> generate_single_image -> save_model (the toolkit's, BaseModel.save_model).

Each phase is an object the model owns (phase_*.py), built with exactly what it works on; the model
hands each call to it. Every phase is a trace span; with `model.verbose: false` the tracer is the
null tracer and the spans cost a method call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from toolkit.devices import resolve_device
from toolkit.models.base_model import BaseModel, BaseModelNames, LoraFileKeys
from toolkit.models.generation import GeneratedClip, GenerationSettings
from toolkit.models.model_inputs import AudioLatents, NoisePrediction, PromptEmbeds, VideoLatents

from . import loading, placement
from .arch_rules import LTX2_RULES
from .checkpoint import COMPONENT_ORDER, CheckpointSource, read_variant, resolve_source
from .checkpoint_configs import check_saved_classes
from .component_match import check_components_match
from .phase_decode import DecodePhase
from .phase_encode import EncodePhase
from .phase_generate import GeneratePhase
from .phase_predict import PredictPhase
from .phase_prompt import PromptPhase
from .timestep_conditioning import TIMESTEP_SCALE
from .variant import LTX2Variant, check_arch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Whose key names a `save.format: comfy` LoRA uses (its `modelspec.implementation`).
ORIGINAL_IMPLEMENTATION = "https://github.com/Lightricks/LTX-2"


def torch_dtype(name: str) -> torch.dtype:
    return DTYPES[name]


class LTX2Model(BaseModel):
    """Loads LTX-2's components and runs each phase of training and sampling on them.

    The phases in the order they happen, and where each one is: load_model (here), encode_images and
    encode_audio (phase_encode.py), get_prompt_embeds and unload_text_encoder (phase_prompt.py),
    get_noise_prediction (phase_predict.py), generate_single_image (phase_generate.py), save_model
    (toolkit/models/base_model.py); decode_video and decode_audio, for --inspect (phase_decode.py).
    The phases share the one `components` dict: what `load_model` reads into it, and a transformer
    `replace_transformer` puts there, is what every phase works on.
    """

    arch = "ltx2"
    rules = LTX2_RULES
    timestep_scale = TIMESTEP_SCALE

    def __init__(self, model_config, device: str = "cpu"):
        super().__init__(model_config, device)
        self.dtype = torch_dtype(model_config.dtype)
        self.te_dtype = torch_dtype(model_config.te_dtype or model_config.dtype)
        self.te_device = torch.device(resolve_device(model_config.te_device or device))
        self.source: CheckpointSource | None = None
        self.variant: LTX2Variant | None = None
        self._latent_identity: str | None = None
        components = self.components
        self.placement = placement.Placement(model_config, components, self.device, self.te_device)
        self.encoding = EncodePhase(components, self.placement, self.device, model_config.vae_tiling)
        self.prompts = PromptPhase(
            components, self.placement, model_config.max_sequence_length, self.dtype, self.te_device, self.device
        )
        self.prediction = PredictPhase(components, self.dtype)
        self.generation = GeneratePhase(
            components, self.placement, self.prompts, self.device, model_config.low_vram or model_config.vae_tiling
        )
        self.decoding = DecodePhase(components, self.placement, self.device)

    # -- the model interface's class-level answers (toolkit/models/base_model.py) -------------
    @classmethod
    def lora_target_pattern(cls) -> str:
        from .lora_names import LTX2_LORA_TARGETS

        return LTX2_LORA_TARGETS

    @classmethod
    def lora_file_keys(cls) -> LoraFileKeys:
        from .lora_names import LTX2_LORA_FILE_KEYS

        return LTX2_LORA_FILE_KEYS

    @classmethod
    def tiny_names(cls) -> dict[str, str]:
        from .tiny.model import TINY_NAMES

        return dict(TINY_NAMES)

    @classmethod
    def ensure_tiny(cls, name: str, cache_dir: str | Path | None = None) -> Path:
        from .tiny.model import TINY_NAMES, ensure_tiny_ltx2

        return ensure_tiny_ltx2(cache_dir, version=TINY_NAMES[name])

    @classmethod
    def quantization_excludes(cls) -> dict[str, tuple[str, ...]]:
        from .quantization_excludes import DEFAULT_EXCLUDE

        return dict(DEFAULT_EXCLUDE)

    @staticmethod
    def lora_target_problems(model_config, network_config) -> list[tuple[str, str]]:
        """Before loading: (key, message) for each LoRA filter entry that selects no layer (run.py's checks)."""
        from .lora_preflight import lora_target_problems

        return lora_target_problems(model_config, network_config)

    @staticmethod
    def component_problems(model_config) -> list[str]:
        """Components of different releases in one checkpoint, from their configs (component_match.py)."""
        from .component_match import component_problems

        return component_problems(model_config)

    @staticmethod
    def checkpoint_report(model_config) -> list[str]:
        """`--dry-run`: the checkpoint's LTX-2 version and its components, each built on the meta device."""
        from .checkpoint_check import checkpoint_report

        return checkpoint_report(model_config)

    @classmethod
    def memory_plan_components(cls, settings, roles=None):
        """The memory plan's view of LTX-2 (toolkit.memory_management.plan_components.PlannedModel)."""
        from .memory_plan_components import memory_plan_components

        return memory_plan_components(settings, roles)

    @staticmethod
    def checkpoint_version(model_config) -> str:
        """The LTX-2 version the memory plan plans: the weights' when their configs can be read, else `model.arch`'s."""
        from .checkpoint_check import planned_version

        return planned_version(model_config)

    # -- components --------------------------------------------------------
    def __getattr__(self, name: str):
        components = self.__dict__.get("components", {})
        if name in components:
            return components[name]
        raise AttributeError(name)

    @property
    def text_encoder_loaded(self) -> bool:
        return self.prompts.text_encoder_loaded

    @property
    def audio_sample_rate(self) -> int:
        """The rate the audio VAE was trained at; clips are resampled to it."""
        return int(self.audio_vae.config.sample_rate)

    @property
    def max_sequence_length(self) -> int:
        return self.prompts.max_sequence_length

    def encoder_identity(self) -> str:
        """What the latent cache keys on: the latent space and the VAE encoders' weights (cache_identity.py)."""
        if self._latent_identity is None:
            from .cache_identity import latent_identity

            self._latent_identity = latent_identity(self.variant.version, self.vae, self.audio_vae)
        return self._latent_identity

    def text_encoder_identity(self) -> str:
        """What the text-embedding cache keys on: the checkpoint, its LTX-2 version and its connectors."""
        from .cache_identity import text_identity

        return text_identity(self.source.location, self.variant.version, self.connectors, self.te_dtype)

    def metadata(self) -> dict[str, str]:
        """The base model's version for a saved LoRA's header and the run's state.json (strings: safetensors
        metadata holds only strings)."""
        import json

        if self.variant is None:
            return {}
        return {
            "ltx2_version": self.variant.version,
            "ltx2_arch": self.variant.arch,
            "ltx2_variant": json.dumps(self.variant.describe(), sort_keys=True),
        }

    def base_model_names(self) -> BaseModelNames | None:
        """`ltx-2.0` / `ltx-2.3` / `ltx-2.5`; the original layout's key names are Lightricks' (LTX-2 repository)."""
        if self.variant is None:
            return None
        implementations = {"comfy": ORIGINAL_IMPLEMENTATION, "diffusers": "diffusers"}
        return BaseModelNames(architecture=f"ltx-{self.variant.version}", implementations=implementations)

    # -- load_model --------------------------------------------------------
    def load_model(self, defer_text_encoder: bool = False) -> "LTX2Model":
        """Read every component, put each on its device and dtype, freeze them. With `defer_text_encoder` the text
        encoder is read at the first `get_prompt_embeds` instead, so a run whose prompts all come from the cache
        never reads it."""
        config = self.config
        names = tuple(name for name in COMPONENT_ORDER if not (defer_text_encoder and name == "text_encoder"))
        with self.tracer.span(
            "load_model", name_or_path=config.name_or_path, dtype=self.dtype, device=self.device
        ) as span:
            self.source = resolve_source(config.name_or_path, getattr(config, "base_model_path", None), fetch=True)
            self.variant = read_variant(self.source)
            check_saved_classes(self.source.base, COMPONENT_ORDER)
            check_arch(config.arch, self.variant, config.name_or_path)
            check_components_match(self.source)
            span.set(source=self.source.describe(), variant=self.variant.describe())
            for name in names:
                self.components[name] = loading.load_one(self, name)
            if defer_text_encoder:
                self.prompts.load_text_encoder = lambda: loading.load_one(self, "text_encoder")
                span.set(deferred=["text_encoder"])
            loading.trace_skipped(self.source.base, COMPONENT_ORDER)
            span.set(components=list(self.components), **loading.files_read(self.source, names))
        return self

    # -- the phases, each handed to the object that runs it ------------------
    def encode_images(self, video: torch.Tensor, clip: str | None = None) -> VideoLatents:
        return self.encoding.encode_images(video, clip)

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int, is_silence: list[bool] | None = None) -> AudioLatents:
        return self.encoding.encode_audio(waveform, sample_rate, is_silence)

    def get_prompt_embeds(self, prompts: list[str], keep_text_states: bool = False) -> PromptEmbeds:
        return self.prompts.get_prompt_embeds(prompts, keep_text_states)

    def unload_text_encoder(self) -> None:
        self.prompts.unload_text_encoder()

    def offload_transformer(self):
        """With layer_offloading: attach the MemoryManager to the transformer (after the LoRA, if any)."""
        config = self.config
        if not config.layer_offloading:
            return None
        return placement.offload_layers(
            "transformer", self.transformer, self.device, config.layer_offloading_transformer_percent
        )

    def get_noise_prediction(
        self,
        video_latents: torch.Tensor,
        audio_latents: torch.Tensor,
        sigmas: torch.Tensor,
        prompt: PromptEmbeds,
        fps: float | Sequence[float],
        video_sigmas: torch.Tensor | None = None,
    ) -> NoisePrediction:
        return self.prediction.get_noise_prediction(video_latents, audio_latents, sigmas, prompt, fps, video_sigmas)

    def generate_single_image(
        self,
        prompt: str,
        output_path: str | Path,
        settings: GenerationSettings,
        prompt_embeds: PromptEmbeds | None = None,
        negative_embeds: PromptEmbeds | None = None,
    ) -> GeneratedClip:
        return self.generation.generate_single_image(prompt, output_path, settings, prompt_embeds, negative_embeds)

    # -- what --inspect asks -------------------------------------------------
    def describe_prompt_tokens(self, text: str) -> dict:
        return self.prompts.describe_tokens(text)

    def attention_modules(self) -> dict[str, torch.nn.Module]:
        """Every block's four cross-attentions (text to video and to audio, audio to video, video to audio)."""
        from .attention_probes import cross_attention_modules

        return cross_attention_modules(self.transformer)

    def decode_video(self, video_latents: torch.Tensor) -> torch.Tensor:
        return self.decoding.decode_video(video_latents)

    def decode_audio(self, audio_latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        return self.decoding.decode_audio(audio_latents)
