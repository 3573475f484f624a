"""Train -> sample consistency: a LoRA overfitted on one clip by the trainer's own steps, sampled through
diffusers' LTX2Pipeline, gives back that clip's latents.

This is the end-to-end check that the loss target, the noise convention, the noise-level schedule and
the sampler agree: a sign error in the target or noise mixed the other way round sends the sample
somewhere else (both were flipped while writing this test, and it failed; see MAX_DISTANCE). The
transformer's timestep conditioning is held by tests/ltx2/test_ltx2_parity.py: a LoRA overfitted on one
clip reads the noise level off the latents, so a wrong timestep scale in training goes unseen here.

The clip's latents are a pattern set in latent space (a level per channel and a ramp across the
width, at the unit scale of normalised latents), not the tiny VAE's encoding of a demo clip: the
tiny VAE has random weights and encodes every demo clip to nearly the same latents (std 0.36, two
clips 12% apart), too close to tell apart after a short overfit. The trainer still loads, encodes
and steps as in a real run; only the clip's latents are replaced before the first step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import pytest
import torch

from extensions_built_in.diffusion_models.ltx2 import latent_layout
from extensions_built_in.diffusion_models.ltx2.generation import build_pipeline

from tests.conftest import NO_GUIDANCE
from tests.trainer.conftest import copy_clips, set_up_trainer, train_steps, write_config

STEPS = 200
SIZE, NUM_FRAMES = 32, 9
# 2.0 trains the default LoRA (attention and feed-forward). On the random tiny 2.3 that LoRA learns too
# slowly for a short test (the audio stays 1.1 from the clip after 300 steps), so there it also covers
# the layers in and out of the token streams and the timestep modulation. The default LoRA relies on the
# timestep more, which is why 2.0 keeps it: there, mixing the noise the other way round fails the test;
# a LoRA that fits the clip closely reads the noise level off the latents instead.
# How far (relative) a sample may land from the trained clip. Measured: 2.0 video 0.56-0.58, audio
# 0.55-0.62; 2.3 video 0.18-0.21, audio 0.10-0.13. The untrained LoRA's samples are 1.4-1.9 away, the other
# clip 1.6-1.9 (the two clips are 1.9 apart, 2.0 for audio). Flipped on purpose while writing this test:
# the target's sign puts the video samples 2.7 (2.0) and 3.4 (2.3) from the clip; the noise mixed the other
# way round 0.86 (2.0) and 0.48-0.58 (2.3); a timestep scale of 1 instead of 1000 in training goes unseen
# here (0.56 and 0.22: an overfitted LoRA can read the noise level off the latents), which is what
# tests/ltx2/test_ltx2_parity.py holds instead.
MAX_DISTANCE = {"tiny-ltx2": 0.7, "tiny-ltx2.3": 0.35}
LORA_TARGETS = {
    "tiny-ltx2": None,
    "tiny-ltx2.3": [
        "to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2",
        "proj_in", "proj_out", "audio_proj_in", "audio_proj_out", "time_embed.linear", "audio_time_embed.linear",
    ],
}


@dataclass
class LatentClip:
    video: torch.Tensor  # (C, F, H, W), normalised
    audio: torch.Tensor  # (C, L, M), normalised


def patterned_clip(video_shape, audio_shape, levels: list[float], ramp: float) -> LatentClip:
    """Latents with a level per channel (video) or mel bin (audio) and, for video, a ramp across the width."""
    def cycled(count: int) -> torch.Tensor:
        return torch.tensor(levels).repeat(count // len(levels) + 1)[:count]

    channels, width = video_shape[0], video_shape[-1]
    video = (cycled(channels).view(channels, 1, 1, 1) + ramp * torch.linspace(-1, 1, width)).expand(video_shape).clone()
    mel_bins = audio_shape[-1]
    audio = cycled(mel_bins).view(1, 1, mel_bins).expand(audio_shape).clone()
    return LatentClip(video, audio)


def sample_latents(model, caption: str, fps: float, audio_shape, seed: int) -> LatentClip:
    """LTX2Pipeline's latents for the caption (guidance off), normalised as the trainer's are."""
    from diffusers import LTX2Pipeline

    prompt = model.get_prompt_embeds([caption], keep_text_states=True)
    generator = torch.Generator().manual_seed(seed)
    # The pipeline works out the audio length from frames and fps; the start noise fixes it to the clip's.
    audio_noise = torch.randn((1, *audio_shape), generator=generator)
    video, audio = build_pipeline(model, LTX2Pipeline)(
        prompt_embeds=prompt.for_sampling["text_states"],
        prompt_attention_mask=prompt.for_sampling["text_mask"],
        audio_latents=latent_layout.denormalize_audio(audio_noise, model.audio_vae),
        height=SIZE,
        width=SIZE,
        num_frames=NUM_FRAMES,
        frame_rate=fps,
        num_inference_steps=8,
        **NO_GUIDANCE,
        generator=generator,
        output_type="latent",
        return_dict=False,
        max_sequence_length=model.max_sequence_length,
    )
    return LatentClip(
        latent_layout.normalize_video(video, model.vae)[0], latent_layout.normalize_audio(audio, model.audio_vae)[0]
    )


def relative_distance(sample: torch.Tensor, target: torch.Tensor) -> float:
    return ((sample - target).norm() / target.norm()).item()


@pytest.fixture(params=sorted(LORA_TARGETS))
def overfitted(request, tmp_path):
    """A trainer whose LoRA was overfitted, by `hook_train_loop`, on one clip with patterned latents."""
    clips = copy_clips(tmp_path / "clips", 1)
    config = write_config(
        tmp_path,
        {
            "model.name_or_path": request.param,
            "datasets.0.folder_path": str(clips),
            "datasets.0.resolution": [SIZE],
            "datasets.0.cache_latents_to_disk": False,
            # The clip's first 9 frames at its own 24 fps, as the bounds were measured; spread over the clip
            # (ai-toolkit's default) they are labelled 12 fps and the 2.0 audio needs more steps to get there.
            "datasets.0.shrink_video_to_frames": False,
            "datasets.0.cache_text_embeddings": False,
            "train.steps": STEPS,
            "train.batch_size": 4,
            "train.lr": 5e-3,
            "train.unload_text_encoder": False,
            "network.linear": 16,
            "network.linear_alpha": 16,
            "network.target_modules": LORA_TARGETS[request.param],
            "save.save_every": STEPS,
        },
    )
    trainer = set_up_trainer(config)
    (example,) = trainer.data.examples
    clip = patterned_clip(example.video_latents.shape, example.audio_latents.shape, [1.0, -1.0, 0.5, -0.5], 0.5)
    other = patterned_clip(example.video_latents.shape, example.audio_latents.shape, [-0.5, 0.5, -1.0, 1.0], -0.5)
    trainer.data.examples[0] = replace(example, video_latents=clip.video, audio_latents=clip.audio)
    with one_thread():
        train_steps(trainer, STEPS)
    return trainer, clip, other, MAX_DISTANCE[request.param]


@contextlib.contextmanager
def one_thread():
    """The tiny model's tensors are too small for intra-op threads: on a busy 2-core machine two threads
    spin-wait on each other and a step takes 30x the CPU time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_sampling_the_trained_caption_gives_back_the_trained_clip(overfitted):
    trainer, clip, other, max_distance = overfitted
    example = trainer.data.examples[0]
    audio_shape = tuple(clip.audio.shape)
    with one_thread():
        samples = [sample_latents(trainer.model, example.caption, example.fps, audio_shape, seed) for seed in (1, 2)]
        trainer.network.set_enabled(False)
        try:
            untrained = sample_latents(trainer.model, example.caption, example.fps, audio_shape, 1)
        finally:
            trainer.network.set_enabled(True)
    untrained_video = relative_distance(untrained.video, clip.video)
    untrained_audio = relative_distance(untrained.audio, clip.audio)
    for seed, sample in zip((1, 2), samples):
        assert sample.video.shape == clip.video.shape and sample.audio.shape == clip.audio.shape
        video = relative_distance(sample.video, clip.video), relative_distance(sample.video, other.video)
        audio = relative_distance(sample.audio, clip.audio), relative_distance(sample.audio, other.audio)
        for name, (to_clip, to_other), before in (("video", video, untrained_video), ("audio", audio, untrained_audio)):
            where = f"{name} sample (seed {seed}): {to_clip:.2f} from the trained clip"
            assert to_clip < max_distance, where
            assert to_clip < 0.45 * to_other, f"{where}, {to_other:.2f} from another"
            assert to_clip < 0.5 * before, f"{where}, {before:.2f} before training"
