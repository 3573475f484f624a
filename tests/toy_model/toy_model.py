"""A second model arch, not LTX-2: the model interface (toolkit/models/base_model.py) on a two-block transformer.

Registered as arch "toy" (`register_toy_arch`) with its own shape rules (5, 9, 13 ... frames; sides in multiples
of 8), it trains, samples and saves through sd_trainer and generate, which know nothing of it. Its "VAE" is
fixed pooling (8x8 pixels and 4 frames to one latent; 40 audio samples at 8 kHz to one feature), its text
encoder a byte embedding, its denoiser toy_modules.ToyTransformer; the weights are random, built once and
saved like a real checkpoint (`ensure_tiny`).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from toolkit.models.arch_rules import ArchRules
from toolkit.models.base_model import BaseModel, LoraFileKeys
from toolkit.models.generation import GeneratedClip, GenerationSettings, write_clip
from toolkit.models.model_inputs import AudioLatents, NoisePrediction, PromptEmbeds, VideoLatents

from .toy_modules import ToyTextEncoder, ToyTransformer

ARCH = "toy"
TOY_RULES = ArchRules(model_name="the toy model", frame_step=4, size_multiple=8, default_size=32, default_num_frames=5)
SPATIAL, AUDIO_RATE, HOP, AUDIO_FEATURES, MAX_TOKENS = 8, 8000, 160, 4, 16
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def register_toy_arch() -> None:
    """Make `model.arch: toy` valid (once per process), as an extension's __init__ would."""
    from toolkit.extensions import register_model_arch, registered_archs

    if ARCH not in registered_archs():
        register_model_arch(ARCH, "tests.toy_model.toy_model:ToyModel", TOY_RULES)


class ToyModel(BaseModel):
    arch = ARCH
    rules = TOY_RULES
    timestep_scale = 1000.0

    # -- before loading ----------------------------------------------------------------------
    @classmethod
    def lora_target_pattern(cls) -> str:
        return r"blocks\.\d+\.attn[12]\.(?:to_q|to_k|to_v|to_out\.0)"

    @classmethod
    def lora_file_keys(cls) -> LoraFileKeys:
        # The original layout names modules as peft does, under `diffusion_model.`.
        def to_diffusers(tensors: dict) -> dict:
            return {"transformer." + key.removeprefix("diffusion_model."): value for key, value in tensors.items()}

        return LoraFileKeys(to_original=lambda name: name, to_diffusers=to_diffusers)

    @classmethod
    def tiny_names(cls) -> dict[str, str]:
        return {"toy": "1"}

    @classmethod
    def ensure_tiny(cls, name: str, cache_dir: str | Path | None = None) -> Path:
        folder = Path(cache_dir or os.environ.get("LTX2_TRACE_CACHE") or tempfile.gettempdir()) / f"{name}_model"
        if not (folder / "transformer" / "config.json").is_file():
            torch.manual_seed(0)
            ToyTextEncoder().save_pretrained(folder / "text_encoder")
            ToyTransformer(timestep_scale=cls.timestep_scale).save_pretrained(folder / "transformer")
        return folder

    @classmethod
    def memory_plan_components(cls, settings, roles=None):  # two tiny modules: always both
        from toolkit.memory_management.plan_components import PlannedModel, describe_component

        with torch.device("meta"):
            modules = {"text_encoder": ToyTextEncoder(), "transformer": ToyTransformer()}
        return PlannedModel(
            source="toy model", components={name: describe_component(name, m, None) for name, m in modules.items()},
            roles={"text_encoder": "text_encoder", "transformer": "denoiser"}, lora_targets=cls.lora_target_pattern(),
        )

    # -- loaded ------------------------------------------------------------------------------
    def load_model(self, defer_text_encoder: bool = False) -> ToyModel:  # the toy's text encoder is too small to defer
        name = self.config.name_or_path
        self.folder = self.ensure_tiny(name) if name in self.tiny_names() else Path(name)
        dtype = DTYPES[self.config.dtype]
        for component, cls in (("text_encoder", ToyTextEncoder), ("transformer", ToyTransformer)):
            module = cls.from_pretrained(self.folder / component, torch_dtype=dtype).requires_grad_(False).eval()
            self.components[component] = module.to(self.device)
        return self

    @property
    def audio_sample_rate(self) -> int:
        return AUDIO_RATE

    @property
    def max_sequence_length(self) -> int:
        return MAX_TOKENS

    def encoder_identity(self) -> str:
        return f"toy pooling {SPATIAL}x{SPATIAL}x{self.rules.frame_step}, audio {AUDIO_RATE} Hz / {HOP // AUDIO_FEATURES}"

    def text_encoder_identity(self) -> str:
        return f"toy byte embedding {self.folder}"

    def metadata(self) -> dict[str, str]:
        return {"toy_version": self.tiny_names()["toy"]}

    # -- phases ------------------------------------------------------------------------------
    def encode_images(self, video: torch.Tensor, clip: str | None = None) -> VideoLatents:
        step = self.rules.frame_step
        self.rules.check_frame_count(video.shape[2])
        later = video[:, :, 1:].unflatten(2, (-1, step)).mean(3)  # each latent frame after the first: `step` frames
        latents = F.avg_pool3d(torch.cat([video[:, :, :1], later], 2), (1, SPATIAL, SPATIAL)).to(self.device)
        return VideoLatents(latents, tuple(video.shape), SPATIAL, step)

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int, is_silence: list[bool] | None = None) -> AudioLatents:
        from toolkit.data.audio import resample_audio

        mono = resample_audio(waveform.float(), sample_rate, AUDIO_RATE).mean(1)
        mono = F.pad(mono, (0, -mono.shape[-1] % HOP))
        latents = mono.unflatten(-1, (-1, AUDIO_FEATURES, HOP // AUDIO_FEATURES)).mean(-1)[:, None].to(self.device)
        silence = list(is_silence or [False] * waveform.shape[0])
        return AudioLatents(latents, tuple(mono.shape), (mono.shape[0], 1, mono.shape[-1]), AUDIO_RATE, silence)

    def _token_ids(self, text: str) -> tuple[list[int], list[int]]:
        ids = [byte + 1 for byte in text.strip().encode()]
        return ids[:MAX_TOKENS], ids

    @torch.no_grad()
    def get_prompt_embeds(self, prompts: list[str], keep_text_states: bool = False) -> PromptEmbeds:
        encoder = self.components["text_encoder"]
        if encoder is None:
            raise RuntimeError("the toy text encoder was unloaded")
        kept = [self._token_ids(prompt)[0] for prompt in prompts]
        ids = torch.tensor([row + [0] * (MAX_TOKENS - len(row)) for row in kept], device=self.device)
        return PromptEmbeds({"text": encoder(ids)}, (ids != 0).long())

    def unload_text_encoder(self) -> None:
        self.components["text_encoder"] = None

    def offload_transformer(self):
        if not self.config.layer_offloading:
            return None
        from toolkit.memory_management import MemoryManager

        return MemoryManager.attach(self.transformer, self.device, self.config.layer_offloading_transformer_percent)

    def get_noise_prediction(
        self, video_latents: torch.Tensor, audio_latents: torch.Tensor, sigmas: torch.Tensor, prompt: PromptEmbeds,
        fps: float | Sequence[float], video_sigmas: torch.Tensor | None = None,
    ) -> NoisePrediction:
        """The toy has no positions, so `fps` changes nothing; each token gets its own noise level."""
        batch, channels, frames, height, width = video_latents.shape
        video_tokens = video_latents.flatten(2).transpose(1, 2)
        audio_tokens = audio_latents.transpose(1, 2).flatten(2)
        if video_sigmas is None:
            video_sigmas = sigmas[:, None].expand(batch, video_tokens.shape[1])
        audio_sigmas = sigmas[:, None].expand(batch, audio_tokens.shape[1])
        video, audio = self.transformer(
            video_tokens, audio_tokens, video_sigmas, audio_sigmas, prompt["text"], prompt.attention_mask
        )
        return NoisePrediction(
            video=video.transpose(1, 2).reshape(batch, channels, frames, height, width).float(),
            audio=audio.unflatten(2, (audio_latents.shape[1], -1)).transpose(1, 2).float(),
        )

    @torch.no_grad()
    def generate_single_image(
        self, prompt: str, output_path: str | Path, settings: GenerationSettings,
        prompt_embeds: PromptEmbeds | None = None, negative_embeds: PromptEmbeds | None = None,
    ) -> GeneratedClip:
        """Euler steps from noise along the flow (x_t = (1 - t) x_0 + t noise), with classifier-free guidance."""
        if settings.control_image:
            raise ValueError(f"{settings.control_image}: the toy model samples from text only (no image-to-video)")
        if prompt_embeds is None:
            prompt_embeds = self.get_prompt_embeds([prompt])
        guided = settings.guidance_scale > 1.0
        if guided and negative_embeds is None:
            negative_embeds = self.get_prompt_embeds([settings.negative_prompt])
        generator = torch.Generator().manual_seed(settings.seed)
        samples = round(settings.num_frames / settings.fps * AUDIO_RATE)
        video_shape = (1, 3, (settings.num_frames - 1) // self.rules.frame_step + 1,
                       settings.height // SPATIAL, settings.width // SPATIAL)
        video = torch.randn(video_shape, generator=generator).to(self.device)
        audio = torch.randn((1, 1, math.ceil(samples / HOP), AUDIO_FEATURES), generator=generator).to(self.device)
        levels = torch.linspace(1.0, 0.0, settings.steps + 1, device=self.device)
        for level, following in zip(levels[:-1], levels[1:]):
            sigmas = level.expand(1)
            step = self.get_noise_prediction(video, audio, sigmas, prompt_embeds, settings.fps)
            if guided:
                unguided = self.get_noise_prediction(video, audio, sigmas, negative_embeds, settings.fps)
                step = NoisePrediction(*(u + settings.guidance_scale * (s - u) for s, u in
                                         ((step.video, unguided.video), (step.audio, unguided.audio))))
            video, audio = video + (following - level) * step.video, audio + (following - level) * step.audio
        frames = ((self.decode_video(video)[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).cpu()
        waveform = self.decode_audio(audio)[0][0][:, :samples].cpu()
        return write_clip(Path(output_path), frames, waveform, AUDIO_RATE, settings.fps)

    # -- what --inspect asks -----------------------------------------------------------------
    def describe_prompt_tokens(self, text: str) -> dict:
        kept, whole = self._token_ids(text)
        return {"tokens_kept": len(kept), "tokens_in_caption": len(whole), "max_length": MAX_TOKENS,
                "padding_tokens": MAX_TOKENS - len(kept), "truncated": len(whole) > len(kept),
                "decoded": bytes(i - 1 for i in kept).decode(errors="replace")}

    def attention_modules(self) -> dict[str, torch.nn.Module]:
        return {f"blocks.{index}.text_to_tokens": block.attn2 for index, block in enumerate(self.transformer.blocks)}

    def decode_video(self, video_latents: torch.Tensor) -> torch.Tensor:
        pixels = F.interpolate(video_latents.float(), scale_factor=(1, SPATIAL, SPATIAL), mode="nearest")
        later = pixels[:, :, 1:].repeat_interleave(self.rules.frame_step, dim=2)
        return torch.cat([pixels[:, :, :1], later], 2).clamp(-1, 1)

    def decode_audio(self, audio_latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        waveform = audio_latents.float().repeat_interleave(HOP // AUDIO_FEATURES, dim=-1).flatten(2)
        return waveform.clamp(-1, 1), AUDIO_RATE
