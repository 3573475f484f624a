"""Sampling through diffusers' LTX2Pipeline (text-to-video) or LTX2ImageToVideoPipeline (a prompt
with a control image)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from toolkit.errors import DataError
from toolkit.models.model_inputs import PromptEmbeds

from .checkpoint import COMPONENT_ORDER

TEXT_TO_VIDEO = "LTX2Pipeline"
IMAGE_TO_VIDEO = "LTX2ImageToVideoPipeline"


@dataclass(frozen=True)
class PipelineChoice:
    """Which diffusers pipeline samples a prompt, and why."""

    name: str
    reason: str


def choose_pipeline(control_image: str | None) -> PipelineChoice:
    if control_image:
        return PipelineChoice(IMAGE_TO_VIDEO, f"the prompt names a control image ({control_image}) for the first frame")
    return PipelineChoice(TEXT_TO_VIDEO, "text-only prompt (no ctrl_img)")


def load_control_image(path: str | Path, width: int, height: int):
    """The control image as RGB (as `toolkit.data.images` normalises training images), scaled to cover width x height and center-cropped to exactly that size.

    Returns (image, size before as (width, height)).
    """
    from PIL import Image, UnidentifiedImageError

    from toolkit.data.images import image_to_rgb

    try:
        with Image.open(path) as opened:
            image = Image.fromarray(image_to_rgb(opened))  # 16-bit, palette and alpha as a viewer shows them
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(
            f"control image {path} cannot be read ({error}); point ctrl_img at a PNG or JPEG file"
        ) from error
    before = image.size
    scale = max(width / before[0], height / before[1])
    scaled = (max(width, round(before[0] * scale)), max(height, round(before[1] * scale)))
    if scaled != before:
        image = image.resize(scaled, Image.Resampling.BICUBIC)
    left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
    return image.crop((left, top, left + width, top + height)), before


@contextlib.contextmanager
def vae_decode_tiling(vae, enabled: bool) -> Iterator[None]:
    """Tiled VAE decoding while sampling (low_vram), the VAE's previous setting restored afterwards."""
    previous = vae.use_tiling
    if enabled:
        vae.enable_tiling()
    try:
        yield
    finally:
        vae.use_tiling = previous


def build_pipeline(model, pipeline_class=None):
    """A pipeline (LTX2Pipeline unless told otherwise) over the loaded `model.components` (no copies of the weights);
    `model` is the LTX2Model or its GeneratePhase."""
    from diffusers import LTX2Pipeline

    pipeline_class = pipeline_class or LTX2Pipeline
    components = {name: model.components.get(name) for name in COMPONENT_ORDER}
    # The scheduler keeps state between calls; each sample gets its own.
    components["scheduler"] = copy.deepcopy(components["scheduler"])
    pipeline = pipeline_class(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run_pipeline(
    model, prompt_embeds: PromptEmbeds, negative_embeds: PromptEmbeds | None, settings, control_image=None
):
    """Returns frames (T, H, W, 3) uint8, audio (channels, samples) float and the audio sample rate.

    `model` (the LTX2Model or its GeneratePhase) gives the components, the device and the prompt length. With a `control_image` (a PIL image of the sample's size) LTX2ImageToVideoPipeline keeps its latents
    as the clean first latent frame; otherwise LTX2Pipeline samples from text alone.
    """
    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

    if "text_states" not in prompt_embeds.for_sampling:
        raise ValueError("sampling needs prompt embeds encoded with keep_text_states=True")
    positive = prompt_embeds.for_sampling  # Gemma's stacked hidden states: LTX2Pipeline runs the connectors itself
    negative = negative_embeds.for_sampling if negative_embeds is not None else {}
    image_inputs = {} if control_image is None else {"image": control_image}
    pipeline = build_pipeline(model, LTX2Pipeline if control_image is None else LTX2ImageToVideoPipeline)
    device = model.device
    use_guidance = settings.guidance_scale > 1.0 and negative_embeds is not None
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    output = pipeline(
        **image_inputs,
        prompt_embeds=positive["text_states"].to(device),
        prompt_attention_mask=positive["text_mask"].to(device),
        negative_prompt_embeds=negative["text_states"].to(device) if use_guidance else None,
        negative_prompt_attention_mask=negative["text_mask"].to(device) if use_guidance else None,
        height=settings.height,
        width=settings.width,
        num_frames=settings.num_frames,
        frame_rate=float(settings.fps),
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale if use_guidance else 1.0,
        audio_guidance_scale=settings.guidance_scale if use_guidance else 1.0,
        # Spatio-temporal and modality guidance need block indices of the published model; plain CFG
        # works for every size, the tiny one included.
        stg_scale=0.0,
        audio_stg_scale=0.0,
        modality_scale=1.0,
        audio_modality_scale=1.0,
        guidance_rescale=0.0,
        audio_guidance_rescale=0.0,
        spatio_temporal_guidance_blocks=None,
        generator=generator,
        output_type="pt",
        max_sequence_length=model.max_sequence_length,
    )
    frames = (output.frames[0].permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    audio = output.audio[0].float().cpu()
    sample_rate = int(model.components["vocoder"].config.output_sampling_rate)
    return frames, audio, sample_rate

