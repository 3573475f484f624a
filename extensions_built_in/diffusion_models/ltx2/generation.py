"""Sampling through diffusers' LTX2Pipeline and writing the clip with its audio."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from .checkpoint import COMPONENT_ORDER
from .model_inputs import PromptEmbeds


def build_pipeline(model, pipeline_class=None):
    """An LTX2Pipeline over the model's loaded components (no copies of the weights)."""
    from diffusers import LTX2Pipeline

    pipeline_class = pipeline_class or LTX2Pipeline
    components = {name: model.components.get(name) for name in COMPONENT_ORDER}
    # The scheduler keeps state between calls; each sample gets its own.
    components["scheduler"] = copy.deepcopy(components["scheduler"])
    pipeline = pipeline_class(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run_pipeline(model, prompt_embeds: PromptEmbeds, negative_embeds: PromptEmbeds | None, settings):
    """Returns frames (T, H, W, 3) uint8, audio (channels, samples) float and the audio sample rate."""
    if prompt_embeds.text_states is None:
        raise ValueError("sampling needs prompt embeds encoded with keep_text_states=True")
    pipeline = build_pipeline(model)
    device = model.device
    use_guidance = settings.guidance_scale > 1.0 and negative_embeds is not None
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    output = pipeline(
        prompt_embeds=prompt_embeds.text_states.to(device),
        prompt_attention_mask=prompt_embeds.text_mask.to(device),
        negative_prompt_embeds=negative_embeds.text_states.to(device) if use_guidance else None,
        negative_prompt_attention_mask=negative_embeds.text_mask.to(device) if use_guidance else None,
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
    sample_rate = int(model.vocoder.config.output_sampling_rate)
    return frames, audio, sample_rate


def write_clip(path: Path, frames: torch.Tensor, audio: torch.Tensor, sample_rate: int, fps: float):
    """Write an .mp4 (H.264 + AAC) atomically: a temp file renamed into place."""
    from toolkit.data import AudioTrack, write_video

    from .LTX2Model import GeneratedClip

    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write_video(temporary, frames, fps, AudioTrack(waveform=audio.clamp(-1, 1), sample_rate=sample_rate))
    os.replace(temporary, path)
    return GeneratedClip(
        path=path,
        num_frames=frames.shape[0],
        height=frames.shape[1],
        width=frames.shape[2],
        audio_samples=audio.shape[-1],
        sample_rate=sample_rate,
    )
