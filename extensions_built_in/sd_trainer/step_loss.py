"""The loss of one step's clips: flow matching on video and audio, grouped by adapter strength and shape.

`FlowMatchingLoss` is the strategy SDTrainer holds (`trainer.step_loss`), built once the data, the
example order, the LoRA and the preservation prompts exist and given each of them: `hook_train_loop`
reads as one optimizer step and this file as the loss it minimises. Its `predict` is the one traced,
autocast training forward; the held-out evaluation and the inspection use it too.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch

from toolkit.models.model_inputs import NoisePrediction, PromptEmbeds
from toolkit.trace import get_tracer

from .callbacks import StepDetails
from .flow_matching import draw_sigmas, masked_loss, timestep_loss_weights, velocity_target
from .i2v import draw_conditioned, noised_inputs
from .training_data import EncodedData, ExampleOrder, TrainingExample, audio_loss_mask

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class LossParts(NamedTuple):
    """The loss of some clips and what it is made of."""

    loss: torch.Tensor  # what backward runs on: video and audio weighted, plus the auxiliary losses at their strengths
    video: torch.Tensor
    audio: torch.Tensor
    auxiliary: dict[str, torch.Tensor]  # unweighted by their strength (output preservation)
    data_seconds: float  # of the time, assembling the batch (latents, noise, prompts)


class FlowMatchingLoss:
    """Flow matching on video and audio latents, for the clips at some positions of the run.

    `train` is the `train:` config block; `data` the encoded examples; `order` which example each position
    of the run is; `empty_prompt` the encoded empty caption (caption dropout); `preservation` the output
    preservation loss or None; `network` the LoRA (preservation switches it off for its base prediction).
    """

    def __init__(
        self,
        train,
        model,
        data: EncodedData,
        order: ExampleOrder,
        empty_prompt: PromptEmbeds,
        preservation,
        network,
    ):
        self.train = train
        self.model = model
        self.data = data
        self.order = order
        self.empty_prompt = empty_prompt
        self.preservation = preservation
        self.network = network
        self.last_details: StepDetails | None = None  # the tensors of the last group computed with keep_details
        self._assembling = 0.0

    def by_network_weight(self, positions: list[int]) -> dict[float, list[int]]:
        """The positions grouped by their dataset's `network_weight` (the adapter strength they train at)."""
        groups: dict[float, list[int]] = {}
        for position in positions:
            groups.setdefault(self.data.examples[self.order.example_at(position)].network_weight, []).append(position)
        return groups

    def compute(self, positions: list[int], step: int, keep_details: bool = False) -> LossParts:
        """Flow-matching loss of the clips at `positions`, video and audio weighted as configured,
        plus the auxiliary losses (output preservation) at their strengths.

        Clips of different shapes (buckets) are predicted in separate groups and weighted by size.
        """
        train = self.train
        self._assembling = 0.0
        examples = [self.data.examples[self.order.example_at(p)] for p in positions]
        groups: dict[tuple, list[tuple[int, TrainingExample]]] = {}
        for position, example in zip(positions, examples):
            groups.setdefault(example.shape_key, []).append((position, example))
        video_total = audio_total = 0.0
        aux_total: dict[str, torch.Tensor] = {}
        for members in groups.values():
            share = len(members) / len(examples)
            video_loss, audio_loss, aux_losses = self.group_loss(members, step, keep_details)
            video_total = video_total + share * video_loss
            audio_total = audio_total + share * audio_loss
            for name, value in aux_losses.items():
                aux_total[name] = aux_total.get(name, 0.0) + share * value
        loss = train.video_loss_weight * video_total + train.audio_loss_weight * audio_total
        if "preservation" in aux_total:
            loss = loss + self.preservation.strength * aux_total["preservation"]
        return LossParts(loss, video_total, audio_total, aux_total, self._assembling)

    def group_loss(self, members: list[tuple[int, TrainingExample]], step: int, keep_details: bool = False):
        """(video loss, audio loss, {auxiliary loss: value}) of clips of one shape, predicted together."""
        device = self.model.device
        train = self.train
        assembling = time.perf_counter()
        video = torch.stack([e.video_latents for _, e in members]).to(device)
        audio = torch.stack([e.audio_latents for _, e in members]).to(device)
        noise_video, noise_audio, sigmas, prompts, conditioned = [], [], [], [], []
        for position, example in members:
            # Noise, noise level and caption dropout depend on (seed, position) only: a resumed run and
            # a run with another batch layout see the same ones for the same clip.
            generator = torch.Generator().manual_seed(train.seed * 1_000_003 + position)
            sigmas.append(draw_sigmas(generator, 1, train.timestep_type, train.content_or_style, train.timestep_shift))
            noise_video.append(torch.randn(example.video_latents.shape, generator=generator))
            noise_audio.append(torch.randn(example.audio_latents.shape, generator=generator))
            dropped = torch.rand(1, generator=generator).item() < example.caption_dropout_rate
            prompts.append(self.empty_prompt if dropped else example.prompt)
            conditioned.append(draw_conditioned(generator, train.i2v_probability))
        sigmas = torch.cat(sigmas).to(device)
        noise_video = torch.stack(noise_video).to(device)
        noise_audio = torch.stack(noise_audio).to(device)
        prompt = PromptEmbeds.cat(prompts).to(device)
        self._assembling += time.perf_counter() - assembling
        noisy_video, noisy_audio, video_sigmas, loss_mask = noised_inputs(
            video, audio, noise_video, noise_audio, sigmas, conditioned
        )
        fps = [example.fps for _, example in members]  # each clip's own: its positions' time axis
        inputs = (noisy_video, noisy_audio, sigmas, fps, video_sigmas)
        prediction = self.predict("primary", members, prompt, *inputs)
        video_target = velocity_target(video, noise_video)
        audio_target = velocity_target(audio, noise_audio)
        clip_weights = timestep_loss_weights(sigmas, train.timestep_type)
        video_loss = masked_loss(prediction.video, video_target, loss_mask, train.loss_type, clip_weights)
        audio_loss = masked_loss(
            prediction.audio, audio_target, audio_loss_mask([e for _, e in members], device), train.loss_type, clip_weights
        )
        aux_losses = {}
        if self.preservation is not None:

            def predict(kind: str, class_prompt, **fields):
                return self.predict(kind, members, class_prompt, *inputs, **fields)

            indices = [self.order.example_at(position) for position, _ in members]
            aux_losses["preservation"] = self.preservation.loss(predict, self.network, indices, loss_mask, device)
        if keep_details:
            self.last_details = StepDetails(
                step=step,
                captions=[e.caption for _, e in members],
                paths=[str(e.path) for _, e in members],
                sigmas=sigmas.detach(),
                video_latents=video,
                audio_latents=audio,
                noisy_video=noisy_video,
                noisy_audio=noisy_audio,
                video_prediction=prediction.video.detach(),
                audio_prediction=prediction.audio.detach(),
                video_target=video_target,
                audio_target=audio_target,
                prompt=prompt,
                fps=fps,
                video_loss_mask=loss_mask,
            )
        return video_loss, audio_loss, aux_losses

    def predict(
        self, kind: str, members, prompt, noisy_video, noisy_audio, sigmas, fps, video_sigmas, **fields
    ) -> NoisePrediction:
        """One traced transformer prediction; `kind` says which (primary, auxiliary, preservation, evaluation)."""
        # The per-process tracer at call time, as the model's phases read it: never one closed since.
        with self.autocast(), get_tracer().span(
            "predict_noise", lambda: _clip_fields(members), kind=kind, sigmas=sigmas, **fields
        ):
            return self.model.get_noise_prediction(
                noisy_video, noisy_audio, sigmas, prompt, fps=fps, video_sigmas=video_sigmas
            )

    def autocast(self):
        """The training forward's autocast (`train.dtype`; off for fp32)."""
        dtype = self.train.dtype
        return torch.autocast(self.model.device.type, dtype=_AUTOCAST_DTYPES[dtype], enabled=dtype != "fp32")


def _clip_fields(members) -> dict:
    """The trace's view of a prediction's clips (built only when the trace is on)."""
    return {"clips": [str(e.path) for _, e in members], "audio_trained": [e.train_audio for _, e in members]}
