"""LTX2Model: the LTX-2 audio+video model, phase by phase, in the order they happen.

load_model -> encode_images / encode_audio -> get_prompt_embeds ->
get_noise_prediction -> generate_single_image -> save_model.

Every phase is a trace span; with `model.verbose: false` the tracer is the
null tracer and the spans cost a method call.
"""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import torch

from toolkit.devices import resolve_device
from toolkit.errors import ModelLoadError
from toolkit.models.base_model import BaseModel, BaseModelNames, LoraFileKeys
from toolkit.trace import Lines, get_tracer

from . import loading, placement
from .arch_rules import LTX2_RULES
from .checkpoint import COMPONENT_ORDER, CheckpointSource, read_variant, resolve_source
from .checkpoint_configs import check_saved_classes
from .component_match import check_components_match
from .variant import LTX2Variant, check_arch
from .generation import GeneratedClip, GenerationSettings  # noqa: F401 (part of this module's API)
from .model_inputs import PromptEmbeds
from .phase_encode import EncodePhase
from .phase_generate import GeneratePhase
from .phase_predict import PredictPhase
from .timestep_conditioning import TIMESTEP_SCALE  # noqa: F401 (read from here too)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Whose key names a `save.format: comfy` LoRA uses (its `modelspec.implementation`).
ORIGINAL_IMPLEMENTATION = "https://github.com/Lightricks/LTX-2"


def torch_dtype(name: str) -> torch.dtype:
    return DTYPES[name]


class LTX2Model(EncodePhase, PredictPhase, GeneratePhase, BaseModel):
    """Loads LTX-2's components and runs each phase of training and sampling on them.

    The phases in the order they happen, and where each one is: load_model (here), encode_images and
    encode_audio (phase_encode.py), get_prompt_embeds (here), get_noise_prediction (phase_predict.py),
    generate_single_image (phase_generate.py), unload_text_encoder and save_model (here).
    """

    arch = "ltx2"
    rules = LTX2_RULES

    def __init__(self, model_config, device: str = "cpu"):
        self.config = model_config
        self.device = torch.device(resolve_device(device))
        self.dtype = torch_dtype(model_config.dtype)
        self.te_dtype = torch_dtype(model_config.te_dtype or model_config.dtype)
        self.te_device = torch.device(resolve_device(model_config.te_device or device))
        self.source: CheckpointSource | None = None
        self.variant: LTX2Variant | None = None
        self._latent_identity: str | None = None
        self.components: dict = {}

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

    @property
    def tracer(self):
        """The per-process tracer at call time: a model built before `init_tracer` (or kept after
        `reset_tracer`) traces to the current one, never to a closed one."""
        return get_tracer()

    # -- components --------------------------------------------------------
    def __getattr__(self, name: str):
        components = self.__dict__.get("components", {})
        if name in components:
            return components[name]
        raise AttributeError(name)

    @property
    def text_encoder_loaded(self) -> bool:
        return self.components.get("text_encoder") is not None

    @property
    def audio_sample_rate(self) -> int:
        """The rate the audio VAE was trained at; clips are resampled to it."""
        return int(self.audio_vae.config.sample_rate)

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
    def memory_plan_components(cls, settings):
        """The memory plan's view of LTX-2 (toolkit.memory_management.plan_components.PlannedModel)."""
        from .memory_plan_components import memory_plan_components

        return memory_plan_components(settings)

    @staticmethod
    def checkpoint_version(model_config) -> str:
        """The LTX-2 version the memory plan plans: the weights' when their configs can be read, else `model.arch`'s."""
        from .checkpoint_check import planned_version

        return planned_version(model_config)

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
    def load_model(self) -> "LTX2Model":
        """Read every component, put each on its device and dtype, freeze them."""
        config = self.config
        with self.tracer.span(
            "load_model", name_or_path=config.name_or_path, dtype=self.dtype, device=self.device
        ) as span:
            self.source = resolve_source(config.name_or_path, getattr(config, "base_model_path", None))
            self.variant = read_variant(self.source)
            check_saved_classes(self.source.base, COMPONENT_ORDER)
            check_arch(config.arch, self.variant, config.name_or_path)
            check_components_match(self.source)
            span.set(source=self.source.describe(), variant=self.variant.describe())
            if self.tracer.enabled:
                # Only the trace shows the plan; building it costs a second, so skip it otherwise.
                from toolkit.dry_run import memory_plan_report

                self.tracer.event("memory_plan_table", plan=Lines(memory_plan_report(config).splitlines()))
            for name in COMPONENT_ORDER:
                self.components[name] = loading.load_one(self, name)
            loading.trace_skipped(self.source.base, COMPONENT_ORDER)
            span.set(components=list(self.components), **loading.files_read(self.source, COMPONENT_ORDER))
        return self

    def offload_transformer(self):
        """With layer_offloading: attach the MemoryManager to the transformer (after the LoRA, if any)."""
        config = self.config
        if not config.layer_offloading:
            return None
        return placement.offload_layers(
            "transformer", self.transformer, self.device, config.layer_offloading_transformer_percent
        )

    # -- get_prompt_embeds -------------------------------------------------
    @torch.no_grad()
    @placement.uses("text_encoder", "connectors")
    def get_prompt_embeds(self, prompts: list[str], keep_text_states: bool = False) -> PromptEmbeds:
        """Gemma 3 hidden states of every layer, then LTX-2's text connectors."""
        if not self.text_encoder_loaded:
            raise ModelLoadError(
                "get_prompt_embeds: the text encoder was unloaded; prompts must be encoded (or cached) before "
                "train.unload_text_encoder frees it"
            )
        tokenizer = self.tokenizer
        max_length = self.max_sequence_length
        with self.tracer.span("get_prompt_embeds", batch=len(prompts), prompts=prompts, max_length=max_length) as span:
            tokenizer.padding_side = "left"
            tokens = tokenizer(
                [p.strip() for p in prompts],
                padding="max_length",
                max_length=max_length,
                truncation=True,
                add_special_tokens=True,
                return_tensors="pt",
            )
            input_ids = tokens.input_ids.to(self.te_device)
            text_mask = tokens.attention_mask.to(self.te_device)
            outputs = self.text_encoder(input_ids=input_ids, attention_mask=text_mask, output_hidden_states=True)
            text_states = torch.stack(outputs.hidden_states, dim=-1).flatten(2, 3).to(self.dtype)
            video_embeds, audio_embeds, connector_mask = self.connectors(text_states, text_mask, padding_side="left")
            embeds = PromptEmbeds(
                video_embeds=video_embeds,
                audio_embeds=audio_embeds,
                attention_mask=connector_mask,
                text_states=text_states if keep_text_states else None,
                text_mask=text_mask if keep_text_states else None,
            )
            span.set(
                lambda: {
                    "tokens_kept": text_mask.sum(dim=1).tolist(),
                    "truncated": [len(ids) > max_length for ids in tokenizer(prompts, verbose=False).input_ids],
                },
                text_states=text_states,
                video_embeds=video_embeds,
                audio_embeds=audio_embeds,
                attention_mask=connector_mask,
            )
        return embeds.to(self.device)

    @property
    def max_sequence_length(self) -> int:
        configured = getattr(self.config, "max_sequence_length", None)
        return int(configured or min(self.tokenizer.model_max_length, 1024))

    # -- unload_text_encoder -----------------------------------------------
    def unload_text_encoder(self) -> None:
        """Free the text encoder once every prompt it is needed for has been encoded."""
        from toolkit.trace import memory_snapshot

        with self.tracer.span(
            "unload_text_encoder", lambda: {"memory_before": memory_snapshot()}, encoders=["text_encoder"]
        ) as span:
            encoder = self.components.get("text_encoder")
            if encoder is not None:
                encoder.to("cpu")
                self.components["text_encoder"] = None
                left = weakref.ref(encoder)
                del encoder
                if left() is not None:
                    # Only a reference cycle keeps it: a full collection frees it. Skipped otherwise, since
                    # walking every object of a process with torch, diffusers and transformers loaded
                    # took longer than anything else between caching and the first step.
                    gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            span.set(lambda: {"memory_after": memory_snapshot()})

    # -- save_model --------------------------------------------------------
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
        """Write a LoRA trained on this model as one .safetensors file, atomically (every LoRA file the trainer
        writes goes through here). `fmt`, `fold_strength` and the refusal of non-finite weights are
        `toolkit.network.formats.save_lora`'s; the header also names this model's LTX-2 version."""
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
