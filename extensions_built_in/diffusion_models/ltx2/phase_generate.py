"""LTX2Model's generate_single_image: one clip with audio through the LTX-2 pipelines (an object LTX2Model owns).

The pipeline plumbing (which pipeline, control image, tiled decode) is generation.py's; writing the .mp4 is the
toolkit's (`toolkit.models.generation.write_clip`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from toolkit.models.generation import GeneratedClip, GenerationSettings, write_clip
from toolkit.models.model_inputs import PromptEmbeds
from toolkit.trace import get_tracer

from .phase_prompt import PromptPhase
from .placement import Placement


class GeneratePhase:
    """generate_single_image over the model's components, encoding prompts through its prompt phase when not given."""

    def __init__(
        self, components: dict, placement: Placement, prompts: PromptPhase, device: torch.device, tiled_decode: bool
    ):
        self.components = components
        self.placement = placement
        self.prompts = prompts
        self.device = device
        self.tiled_decode = tiled_decode  # model.low_vram or model.vae_tiling

    @property
    def max_sequence_length(self) -> int:
        return self.prompts.max_sequence_length

    # -- generate_single_image ---------------------------------------------
    @torch.no_grad()
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
        from .generation import choose_pipeline, load_control_image, run_pipeline, vae_decode_tiling

        output_path = Path(output_path)
        choice = choose_pipeline(settings.control_image)
        tracer = get_tracer()
        with self.placement.on_device("connectors", "vae", "audio_vae", "vocoder"), tracer.span(
            "generate_single_image",
            prompt=prompt,
            pipeline=choice.name,
            pipeline_reason=choice.reason,
            vae_decode_tiling=self.tiled_decode,
            settings=settings.__dict__,
        ) as span:
            started = time.perf_counter()
            control_image = None
            if settings.control_image:
                control_image, size_before = load_control_image(settings.control_image, settings.width, settings.height)
                tracer.event(
                    "control_image",
                    path=settings.control_image,
                    size_before=list(size_before),
                    size_after=list(control_image.size),
                    resize="scale to cover, center crop",
                )
            if prompt_embeds is None:
                prompt_embeds = self.prompts.get_prompt_embeds([prompt], keep_text_states=True)
            if negative_embeds is None and settings.guidance_scale > 1.0:
                negative_embeds = self.prompts.get_prompt_embeds([settings.negative_prompt], keep_text_states=True)
            with vae_decode_tiling(self.components["vae"], self.tiled_decode):
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
