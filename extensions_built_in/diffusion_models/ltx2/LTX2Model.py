"""LTX2Model: the LTX-2 audio+video model, phase by phase, in the order they happen.

load_model -> encode_images / encode_audio -> get_prompt_embeds ->
get_noise_prediction -> generate_single_image -> save_model.

Every phase is a trace span; with `model.verbose: false` the tracer is the
null tracer and the spans cost a method call.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from toolkit.errors import DataError, ModelLoadError
from toolkit.models.base_model import BaseModel, LoraFileKeys
from toolkit.trace import get_tracer

from . import audio_features, latent_layout, loading, placement
from .checkpoint import COMPONENT_ORDER, CheckpointSource, resolve_source
from .checkpoint_configs import check_saved_classes, read_variant
from .variant import LTX2Variant, check_arch
from .generation import GeneratedClip, GenerationSettings  # noqa: F401 (part of this module's API)
from .model_inputs import AudioLatents, NoisePrediction, PromptEmbeds, VideoLatents
from .timestep_conditioning import TIMESTEP_SCALE, TimestepConditioning  # noqa: F401 (TIMESTEP_SCALE: read from here too)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def torch_dtype(name: str) -> torch.dtype:
    return DTYPES[name]


class LTX2Model(BaseModel):
    """Loads LTX-2's components and runs each phase of training and sampling on them."""

    arch = "ltx2"

    def __init__(self, model_config, device: str = "cpu"):
        self.config = model_config
        self.device = torch.device(_resolve_device(device))
        self.dtype = torch_dtype(model_config.dtype)
        self.te_dtype = torch_dtype(model_config.te_dtype or model_config.dtype)
        self.te_device = torch.device(_resolve_device(model_config.te_device or device))
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

    @classmethod
    def memory_plan_components(cls, settings) -> dict:
        """name -> ComponentSpec of `settings.name_or_path` (a tiny name or a diffusers folder), else of the
        published LTX-`settings.version`."""
        from toolkit.memory_management.architecture import component_specs

        name = settings.name_or_path
        if name in cls.tiny_names():
            return component_specs(cls.ensure_tiny(name), settings.version)
        folder = Path(name).expanduser() if name else None
        return component_specs(folder if folder and (folder / "model_index.json").is_file() else None, settings.version)

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
    def checkpoint_report(model_config) -> list[str]:
        """`--dry-run`: the checkpoint's LTX-2 version and its components, each built on the meta device."""
        from .checkpoint_check import checkpoint_report

        return checkpoint_report(model_config)

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
            span.set(source=self.source.describe(), variant=self.variant.describe())
            if self.tracer.enabled:
                # Only the trace shows the plan; building it costs a second, so skip it otherwise.
                from toolkit.dry_run import memory_plan_report

                self.tracer.event("memory_plan_table", plan=memory_plan_report(config).splitlines())
            for name in COMPONENT_ORDER:
                self.components[name] = loading.load_one(self, name)
            loading.trace_skipped(self.source.base, COMPONENT_ORDER)
            span.set(components=list(self.components))
        return self

    def offload_transformer(self):
        """With layer_offloading: attach the MemoryManager to the transformer (after the LoRA, if any)."""
        config = self.config
        if not config.layer_offloading:
            return None
        return placement.offload_layers(
            "transformer", self.transformer, self.device, config.layer_offloading_transformer_percent
        )

    # -- encode_images -----------------------------------------------------
    @torch.no_grad()
    @placement.uses("vae")
    def encode_images(self, video: torch.Tensor, clip: str | None = None) -> VideoLatents:
        """Frames (B, 3, T, H, W) in [-1, 1] to normalised video latents (B, C, F, H/s, W/s).

        The encode goes through the latent monitor's chain: direct on the device (left out with
        `vae_tiling`), tiled, then on the CPU, each only when the one before ran out of memory.
        `clip` names the frames in its report and errors.
        """
        from toolkit.monitoring.latents import encode_with_fallback
        from toolkit.monitoring.vae_strategies import vae_strategies

        vae = self.vae
        if video.ndim != 5 or video.shape[1] != 3:
            raise DataError(f"encode_images expects frames shaped (batch, 3, frames, height, width), got {tuple(video.shape)}")
        frames = video.shape[2]
        if (frames - 1) % vae.temporal_compression_ratio != 0:
            raise DataError(
                f"encode_images: {frames} frames; LTX-2 needs {vae.temporal_compression_ratio}k+1 frames "
                f"(e.g. {frames - (frames - 1) % vae.temporal_compression_ratio})"
            )
        with self.tracer.span("encode_images", frames=video, clip=clip) as span:
            strategies = vae_strategies(vae, self.device, start_tiled=self.config.vae_tiling)
            latents, report = encode_with_fallback(clip or f"frames {tuple(video.shape)}", video, strategies)
            latents = latent_layout.normalize_video(latents.to(self.device), vae)
            result = VideoLatents(
                latents=latents,
                pixel_shape=tuple(video.shape),
                spatial_compression=vae.spatial_compression_ratio,
                temporal_compression=vae.temporal_compression_ratio,
                strategy=report.strategy,
            )
            span.set(
                strategy=report.strategy,
                failed_strategies=[name for name, _ in report.failures],
                latents=latents,
                spatial_compression=report.spatial_compression,
                temporal_compression=report.temporal_compression,
                elements_per_latent=video[0].numel() / latents[0].numel(),
                seconds=report.seconds,
            )
        return result

    # -- encode_audio ------------------------------------------------------
    @torch.no_grad()
    @placement.uses("audio_vae")
    def encode_audio(
        self, waveform: torch.Tensor, sample_rate: int, is_silence: list[bool] | None = None
    ) -> AudioLatents:
        """Waveform (B, channels, samples) to normalised audio latents (B, C, L, M) via log-mel and the audio VAE."""
        audio_vae = self.audio_vae
        vae_rate = audio_vae.config.sample_rate
        with self.tracer.span(
            "encode_audio", waveform=waveform, sample_rate=sample_rate, is_silence=is_silence
        ) as span:
            resampled = audio_features.resample(waveform, sample_rate, vae_rate)
            mel = audio_features.log_mel(
                audio_features.stereo(resampled).to(self.device),
                vae_rate,
                audio_vae.config.mel_bins,
                audio_vae.config.mel_hop_length,
            )
            latents = audio_vae.encode(mel.to(audio_vae.dtype)).latent_dist.mode()
            latents = latent_layout.normalize_audio(latents, audio_vae)
            span.set(resampled_rate=vae_rate, mel=mel, latents=latents)
        return AudioLatents(
            latents=latents,
            mel_shape=tuple(mel.shape),
            waveform_shape=tuple(resampled.shape),
            sample_rate=vae_rate,
            is_silence=list(is_silence or [False] * waveform.shape[0]),
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
                tokens_kept=text_mask.sum(dim=1).tolist(),
                truncated=[len(ids) > max_length for ids in tokenizer(prompts, verbose=False).input_ids],
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

    # -- get_noise_prediction ----------------------------------------------
    def get_noise_prediction(
        self,
        video_latents: torch.Tensor,
        audio_latents: torch.Tensor,
        sigmas: torch.Tensor,
        prompt: PromptEmbeds,
        fps: float,
        video_sigmas: torch.Tensor | None = None,
    ) -> NoisePrediction:
        """The transformer's velocity for noisy video (B, C, F, H, W) and audio (B, C, L, M) latents.

        `sigmas` (B,) is the noise level in [0, 1]; `video_sigmas` (B, tokens) overrides it per video
        token (image-to-video keeps the first frame's tokens at 0). The transformer is called exactly
        as LTX2Pipeline / LTX2ImageToVideoPipeline call it (see `timestep_conditioning`), so a LoRA
        trains on the forward it is sampled with.
        """
        transformer = self.transformer
        batch, _, frames, height, width = video_latents.shape
        audio_length = audio_latents.shape[2]
        conditioning = TimestepConditioning.for_noise_levels(sigmas, video_sigmas)
        with self.tracer.span(
            "get_noise_prediction",
            video_latents=video_latents,
            audio_latents=audio_latents,
            sigmas=sigmas,
            fps=fps,
            **conditioning.trace_fields(),
        ) as span:
            video_tokens = latent_layout.pack_video(video_latents).to(self.dtype)
            audio_tokens = latent_layout.pack_audio(audio_latents).to(self.dtype)
            if video_sigmas is not None:
                # Image-to-video: tokens at noise level 0 are the clean condition (the first latent frame).
                self.tracer.event(
                    "i2v_conditioning",
                    applied=True,
                    tokens_fixed_per_clip=(video_sigmas == 0).sum(dim=1),
                    tokens_per_clip=video_tokens.shape[1],
                    tokens_per_frame=height * width,
                )
            video_pred, audio_pred = transformer(
                hidden_states=video_tokens,
                audio_hidden_states=audio_tokens,
                encoder_hidden_states=prompt.video_embeds.to(self.dtype),
                audio_encoder_hidden_states=prompt.audio_embeds.to(self.dtype),
                **conditioning.transformer_kwargs(),
                encoder_attention_mask=prompt.attention_mask,
                audio_encoder_attention_mask=prompt.attention_mask,
                num_frames=frames,
                height=height,
                width=width,
                fps=fps,
                audio_num_frames=audio_length,
                return_dict=False,
            )
            prediction = NoisePrediction(
                video=latent_layout.unpack_video(video_pred.float(), frames, height, width),
                audio=latent_layout.unpack_audio(audio_pred.float(), audio_latents.shape[1]),
            )
            span.set(video_prediction=prediction.video, audio_prediction=prediction.audio)
        return prediction

    # -- generate_single_image ---------------------------------------------
    @torch.no_grad()
    @placement.uses("connectors", "vae", "audio_vae", "vocoder")
    def generate_single_image(
        self,
        prompt: str,
        output_path: str | Path,
        settings: GenerationSettings,
        prompt_embeds: PromptEmbeds | None = None,
        negative_embeds: PromptEmbeds | None = None,
    ) -> GeneratedClip:
        """Sample one clip with audio and write it as an .mp4.

        Text-only settings go through LTX2Pipeline; settings with a `control_image` go through
        LTX2ImageToVideoPipeline, the image resized and center-cropped to the sample size. With
        `low_vram` (or `vae_tiling`) the VAE decodes in tiles.
        """
        from .generation import choose_pipeline, load_control_image, run_pipeline, vae_decode_tiling, write_clip

        output_path = Path(output_path)
        choice = choose_pipeline(settings.control_image)
        tiled_decode = self.config.low_vram or self.config.vae_tiling
        with self.tracer.span(
            "generate_single_image",
            prompt=prompt,
            pipeline=choice.name,
            pipeline_reason=choice.reason,
            vae_decode_tiling=tiled_decode,
            settings=settings.__dict__,
        ) as span:
            started = time.perf_counter()
            control_image = None
            if settings.control_image:
                control_image, size_before = load_control_image(settings.control_image, settings.width, settings.height)
                self.tracer.event(
                    "control_image",
                    path=settings.control_image,
                    size_before=list(size_before),
                    size_after=list(control_image.size),
                    resize="scale to cover, center crop",
                )
            if prompt_embeds is None:
                prompt_embeds = self.get_prompt_embeds([prompt], keep_text_states=True)
            if negative_embeds is None and settings.guidance_scale > 1.0:
                negative_embeds = self.get_prompt_embeds([settings.negative_prompt], keep_text_states=True)
            with vae_decode_tiling(self.vae, tiled_decode):
                frames, audio, sample_rate = run_pipeline(self, prompt_embeds, negative_embeds, settings, control_image)
            clip = write_clip(output_path, frames, audio, sample_rate, settings.fps)
            span.set(
                output_path=output_path,
                frames=frames,
                audio=audio,
                sample_rate=sample_rate,
                bytes=output_path.stat().st_size,
                seconds=time.perf_counter() - started,
            )
        return clip

    # -- unload_text_encoder -----------------------------------------------
    def unload_text_encoder(self) -> None:
        """Free the text encoder once every prompt it is needed for has been encoded."""
        from toolkit.trace import memory_snapshot

        with self.tracer.span("unload_text_encoder", encoders=["text_encoder"], memory_before=memory_snapshot()) as span:
            encoder = self.components.get("text_encoder")
            if encoder is not None:
                encoder.to("cpu")
                self.components["text_encoder"] = None
                del encoder
            import gc

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            span.set(memory_after=memory_snapshot())

    # -- save_model --------------------------------------------------------
    def save_model(self, folder: str | Path) -> Path:
        """Save every component in diffusers layout (the whole model, e.g. after merging a LoRA)."""
        from diffusers import LTX2Pipeline

        folder = Path(folder)
        with self.tracer.span("save_model", output=folder, format="diffusers") as span:
            started = time.perf_counter()
            pipeline = LTX2Pipeline(**{name: self.components[name] for name in COMPONENT_ORDER})
            pipeline.save_pretrained(folder, safe_serialization=True)
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            span.set(
                files=len(files),
                bytes=sum(p.stat().st_size for p in files),
                seconds=time.perf_counter() - started,
            )
        return folder


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device: {device!r} was asked for but torch sees no CUDA device; use device: cpu")
    return device
