"""The loss of the held-out clips at fixed noise levels with fixed noise: a number comparable across steps and runs.

Each clip is evaluated at the same noise levels (`flow_matching.evaluation_sigmas`: quantiles of
the training distribution) with noise drawn from a generator seeded by the clip's file name and
the level, never from the training RNG, so evaluating changes nothing in training and the same
weights always give the same loss. The forward is the training forward (`FlowMatchingLoss.predict`:
same autocast, same trace point, the clip's `network_weight` as adapter strength, the
image-to-video condition drawn as training draws it, from the clip's own generator), run
without gradients and with the transformer in eval mode (no LoRA dropout), in chunks of
`train.eval_batch_size` (clip, level) pairs. Video and audio are kept apart; a clip whose
audio does not train (`audio: false`) counts for video only.

Under N processes each evaluates its share of the clips (`DataParallel.held_out_share`) and the
sums are added up over the processes, so the result equals one process's to float rounding.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .flow_matching import evaluation_sigmas, masked_loss, velocity_target
from .i2v import draw_conditioned, noised_inputs
from .network_strength import adapter_strength
from .training_data import TrainingExample

_NOISE_SALT = "evaluation"  # with the clip's file name and the level: the seed of its noise


@dataclass
class HeldOutLosses:
    """The losses of one set of weights over every held-out clip, per noise level (high to low)."""

    sigmas: tuple[float, ...]
    video: list[float]  # mean over the clips, per level
    audio: list[float] | None  # mean over the clips whose audio trains, per level; None when none does
    clips: int
    video_weight: float
    audio_weight: float

    @property
    def video_loss(self) -> float:
        return sum(self.video) / len(self.video)

    @property
    def audio_loss(self) -> float | None:
        return None if self.audio is None else sum(self.audio) / len(self.audio)

    @property
    def per_level(self) -> list[float]:
        """The loss at each level, video and audio weighted as the training loss weights them."""
        audio = self.audio or [0.0] * len(self.video)
        return [self.video_weight * v + self.audio_weight * a for v, a in zip(self.video, audio)]

    @property
    def loss(self) -> float:
        return sum(self.per_level) / len(self.per_level)


class HeldOutLoss:
    """Computes `HeldOutLosses` for the weights the adapter holds when called."""

    def __init__(self, model, examples: list[TrainingExample], train, parallel, predict: Callable):
        self.model = model
        self.train = train
        self.parallel = parallel
        self.predict = predict  # FlowMatchingLoss.predict: the traced, autocast training forward
        self.sigmas = evaluation_sigmas(
            train.eval_noise_levels, train.timestep_type, train.content_or_style, train.timestep_shift
        )
        self.clips = len(examples)
        self.share = parallel.held_out_share(examples)
        self.batch_size = train.eval_batch_size or train.batch_size

    @property
    def forwards(self) -> int:
        """Transformer forwards this process runs per evaluation of one set of weights."""
        return len(self.share) * -(-len(self.sigmas) // self.batch_size)

    def __call__(self) -> HeldOutLosses:
        levels = len(self.sigmas)
        sums = torch.zeros(3 * levels + 1, dtype=torch.float64)  # video sums, audio sums, audio clips, clips
        transformer = self.model.transformer
        was_training = transformer.training
        transformer.eval()
        try:
            with torch.no_grad():
                for example in self.share:
                    video, audio = self._clip_losses(example)
                    sums[:levels] += video
                    if example.train_audio:
                        sums[levels : 2 * levels] += audio
                        sums[2 * levels] += 1
                    sums[3 * levels] += 1
        finally:
            transformer.train(was_training)
        sums = self.parallel.combine_held_out(sums)
        clips, audio_clips = sums[3 * levels].item(), sums[2 * levels].item()
        return HeldOutLosses(
            sigmas=self.sigmas,
            video=(sums[:levels] / clips).tolist(),
            audio=(sums[levels : 2 * levels] / audio_clips).tolist() if audio_clips else None,
            clips=round(clips),
            video_weight=self.train.video_loss_weight,
            audio_weight=self.train.audio_loss_weight,
        )

    def _clip_losses(self, example: TrainingExample) -> tuple[torch.Tensor, torch.Tensor]:
        """(video, audio) losses of one clip at every level."""
        video, audio = [], []
        for start in range(0, len(self.sigmas), self.batch_size):
            chunk_video, chunk_audio = self._chunk_losses(example, self.sigmas[start : start + self.batch_size])
            video.append(chunk_video)
            audio.append(chunk_audio)
        return torch.cat(video).double(), torch.cat(audio).double()

    def _chunk_losses(self, example: TrainingExample, sigmas: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        device, count = self.model.device, len(sigmas)
        noise_video, noise_audio, conditioned = [], [], []
        for sigma in sigmas:
            generator = torch.Generator().manual_seed(noise_seed(example.path, sigma))
            noise_video.append(torch.randn(example.video_latents.shape, generator=generator))
            noise_audio.append(torch.randn(example.audio_latents.shape, generator=generator))
            conditioned.append(draw_conditioned(generator, self.train.i2v_probability))
        clean_video = example.video_latents.unsqueeze(0).expand(count, *example.video_latents.shape).to(device)
        clean_audio = example.audio_latents.unsqueeze(0).expand(count, *example.audio_latents.shape).to(device)
        noise_video = torch.stack(noise_video).to(device)
        noise_audio = torch.stack(noise_audio).to(device)
        sigma_tensor = torch.tensor(sigmas, dtype=torch.float32, device=device)
        noisy_video, noisy_audio, video_sigmas, loss_mask = noised_inputs(
            clean_video, clean_audio, noise_video, noise_audio, sigma_tensor, conditioned
        )
        prompt = example.prompt.repeat(count).to(device)
        members = [(None, example)] * count
        with adapter_strength(self.model.transformer, example.network_weight):
            prediction = self.predict(
                "evaluation", members, prompt, noisy_video, noisy_audio, sigma_tensor, example.fps, video_sigmas
            )
        video_target = velocity_target(clean_video, noise_video)
        audio_target = velocity_target(clean_audio, noise_audio)
        loss_type = self.train.loss_type
        video = [
            masked_loss(prediction.video[i : i + 1], video_target[i : i + 1],
                        None if loss_mask is None else loss_mask[i : i + 1], loss_type)
            for i in range(count)
        ]
        audio = [masked_loss(prediction.audio[i : i + 1], audio_target[i : i + 1], None, loss_type) for i in range(count)]
        return torch.stack(video).cpu(), torch.stack(audio).cpu()


def noise_seed(path: Path | str, sigma: float) -> int:
    """The seed of a held-out clip's noise at one level: its file name and the level, nothing else."""
    return zlib.crc32(f"{_NOISE_SALT}:{Path(path).name}:{sigma:.2f}".encode())
