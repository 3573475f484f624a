"""`--inspect`: every `inspect_every` steps, what the model got and what it predicted, in four blocks.

- inputs: the caption and what the tokenizer kept of it, latents, prompt embeddings and
  masks, the clip's audio segment (length, level), timestep and sigma;
- outputs: the first and last values of prediction and target per stream, MSE, cosine
  similarity, and the predicted clean latent decoded to a frame (.png) and audio (.wav);
- attention: the cross-attention per block the model names (`BaseModel.attention_modules`; LTX-2: text
  to video, text to audio, audio to video, video to audio), read from the query and key the model
  computes by probing processors during one extra no-grad forward with the step's inputs;
- conditioning: how much the prompt (and, for image-to-video, the first frame) changes
  the prediction.

Each block goes to the console once (a tree with a timestamp: printed by the trace when it
prints, by the logger otherwise), the trace and TensorBoard (16_Inspection/...); all four
are also written to <run>/inspection/step_NNNNNN/inspection.json beside the decoded media. The computations live in
toolkit.monitoring; what only the model knows (its tokens, its attention modules, its decoders, its timestep
scale) it answers through the model interface (toolkit/models/base_model.py); this file knows where the
trainer keeps the tensors.
"""

from __future__ import annotations

import json
import wave
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from toolkit.data import read_video
from toolkit.logging.events import trace_prints
from toolkit.monitoring.attention_stats import AttentionProbe
from toolkit.models.model_inputs import PromptEmbeds
from toolkit.monitoring.inspection import (
    audio_level,
    compare_stream,
    describe_tensors,
    flat_fields,
    format_block,
    numeric_leaves,
    predicted_clean,
    relative_change,
)

from .callbacks import StepDetails, StepResult, TrainingCallback

TENSORBOARD_CATEGORY = "16_Inspection"


class InspectionCallback(TrainingCallback):
    """Inspects the steps that are multiples of `every` (0, every, 2*every, ...)."""

    def __init__(self, every: int, run_folder: Path, tensorboard):
        self.every = every
        self.folder = Path(run_folder) / "inspection"
        self.tensorboard = tensorboard

    def wants_details(self, step: int) -> bool:
        return step % self.every == 0

    def on_step_end(self, trainer, step: int, result: StepResult, details: StepDetails | None) -> None:
        if details is None or not trainer.logger.is_main_process:
            return  # other ranks would write the same files and blocks again
        folder = self.folder / f"step_{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            blocks = {
                "inputs": inputs_block(trainer.model, details),
                "outputs": outputs_block(trainer.model, details, folder),
                **rerun_blocks(trainer, details),
            }
        timestamp = datetime.now().isoformat(sep=" ", timespec="seconds")
        for kind, data in blocks.items():
            self._report(trainer, step, kind, data, timestamp)
        (folder / "inspection.json").write_text(json.dumps({"step": step, "timestamp": timestamp, **blocks}, indent=1))

    def _report(self, trainer, step: int, kind: str, data: dict, timestamp: str) -> None:
        text = format_block(f"Inspection: {kind}", step, data, timestamp)
        # One printer: a trace with a console prints the block (the tree under its line); else the logger does.
        trainer.tracer.event(f"inspection_{kind}", lambda: {**flat_fields(data), "block": text}, step=step)
        if not trace_prints(trainer.tracer):
            trainer.logger.info("%s", text)
        # The numbers join the one metrics stream (metrics.jsonl, TensorBoard, W&B) at their step.
        trainer.logger.log_metrics(
            {f"{TENSORBOARD_CATEGORY}/{kind}/{tag}": value for tag, value in numeric_leaves(data).items()}, step=step
        )
        if not self.tensorboard.enabled:
            return
        writer = self.tensorboard.writer
        writer.add_text(f"{TENSORBOARD_CATEGORY}/{kind}", f"```\n{text}\n```", step)
        if kind == "outputs":
            self._log_media(step, data["predicted_clean"])

    def _log_media(self, step: int, media: dict) -> None:
        from PIL import Image

        writer = self.tensorboard.writer
        frame = np.asarray(Image.open(media["frame_image"]))
        writer.add_image(f"{TENSORBOARD_CATEGORY}/outputs/predicted_frame", frame, step, dataformats="HWC")
        with wave.open(media["audio_snippet"], "rb") as audio:
            frames = np.frombuffer(audio.readframes(audio.getnframes()), dtype=np.int16)
            samples = frames.reshape(-1, audio.getnchannels())
            rate = audio.getframerate()
        mono = torch.from_numpy(samples.mean(axis=1) / 32767.0).float()
        writer.add_audio(f"{TENSORBOARD_CATEGORY}/outputs/predicted_audio", mono.clamp(-1, 1), step, rate)



# -- inputs ----------------------------------------------------------------------


def inputs_block(model, details: StepDetails) -> dict:
    """The batch's tensors; the first clip's caption, tokens and audio segment."""
    prompt = details.prompt
    return {
        "clip": details.paths[0],
        "caption": details.captions[0],
        "tokens": model.describe_prompt_tokens(details.captions[0]),
        "latents": describe_tensors(
            video=details.video_latents,
            noisy_video=details.noisy_video,
            audio=details.audio_latents,
            noisy_audio=details.noisy_audio,
        ),
        "prompt_embeds": {
            **describe_tensors(**prompt.embeds, mask=prompt.attention_mask),
            "tokens_attended": prompt.attention_mask.sum(dim=-1).tolist(),
        },
        "audio_segment": clip_audio_segment(model, details),
        "noise": {
            "sigma": details.sigmas.float().tolist(),
            "timestep": (details.sigmas.float() * model.timestep_scale).tolist(),
            "first_frame_conditioned": details.video_loss_mask is not None,
        },
        "fps": details.fps[0],
        "clip_fps": details.fps,
    }


def clip_audio_segment(model, details: StepDetails) -> dict:
    """Length and level of the first clip's audio over the frames it was trained on, read from the clip itself
    (an arch's `frame_step` is its VAE's time compression: each latent frame after the first is that many frames)."""
    latent_frames = details.video_latents.shape[2]
    num_frames = (latent_frames - 1) * model.rules.frame_step + 1
    clip = read_video(details.paths[0], num_frames, fps=details.fps[0])
    if clip.audio is None:
        return {"source": details.paths[0], "audio": "none (an image, or a video without an audio track)"}
    return {"source": details.paths[0], **audio_level(clip.audio.waveform, clip.audio.sample_rate)}


# -- outputs ---------------------------------------------------------------------


def outputs_block(model, details: StepDetails, folder: Path) -> dict:
    """Prediction against target per stream; the first clip's predicted clean latents decoded to media in `folder`."""
    mask = details.video_loss_mask
    # With image-to-video the condition frame's tokens had noise level 0: it is already clean.
    video_sigmas = details.sigmas if mask is None else details.sigmas.view(-1, 1, 1, 1, 1) * mask
    clean_video = predicted_clean(details.noisy_video, details.video_prediction, video_sigmas)
    clean_audio = predicted_clean(details.noisy_audio, details.audio_prediction, details.sigmas)
    frame_path, frame_shape = decode_frame(model, clean_video[:1], folder / "predicted_frame.png")
    audio_path, audio_seconds = decode_audio(model, clean_audio[:1], folder / "predicted_audio.wav")
    return {
        "video": compare_stream(details.video_prediction, details.video_target, mask),
        "audio": compare_stream(details.audio_prediction, details.audio_target),
        "predicted_clean": {
            **describe_tensors(video_latents=clean_video, audio_latents=clean_audio),
            "frame_image": str(frame_path),
            "frame_size": list(frame_shape),
            "audio_snippet": str(audio_path),
            "audio_seconds": audio_seconds,
        },
    }


def decode_frame(model, video_latents: torch.Tensor, path: Path) -> tuple[Path, tuple[int, int]]:
    """Decode normalised video latents (1, C, F, H, W) with the model's video decoder; save the middle frame as a PNG."""
    from PIL import Image

    frames = model.decode_video(video_latents)
    frame = frames[0, :, frames.shape[2] // 2]
    pixels = ((frame + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(pixels).save(path)
    return path, pixels.shape[:2]


def decode_audio(model, audio_latents: torch.Tensor, path: Path) -> tuple[Path, float]:
    """Decode normalised audio latents (1, C, L, M) with the model's audio decoder; save 16-bit WAV."""
    waveform, rate = model.decode_audio(audio_latents)
    samples = (waveform[0] * 32767).round().to(torch.int16).cpu().numpy()  # (channels, samples)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(samples.shape[0])
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(samples.T.tobytes())
    return path, samples.shape[1] / rate


# -- attention and conditioning: one more forward, probed, and its empty-prompt twin ----------


def rerun_blocks(trainer, details: StepDetails) -> dict:
    """Re-run the step's prediction (after this step's update) with the cross-attention probed, then with
    the empty prompt and, for image-to-video, with the condition frame noised like the rest."""
    model = trainer.model
    mask = details.video_loss_mask
    video_sigmas = None if mask is None else details.sigmas[:, None] * mask.flatten(1)

    def predict(prompt: PromptEmbeds, noisy_video: torch.Tensor, token_sigmas: torch.Tensor | None):
        with trainer.step_loss.autocast():
            return model.get_noise_prediction(
                noisy_video, details.noisy_audio, details.sigmas, prompt, fps=details.fps, video_sigmas=token_sigmas
            )

    with AttentionProbe(model.attention_modules()) as probe:
        conditioned = predict(details.prompt, details.noisy_video, video_sigmas)
    empty = trainer.empty_prompt.repeat(details.sigmas.shape[0]).to(model.device)
    unconditioned = predict(empty, details.noisy_video, video_sigmas)
    conditioning = {
        "prompt_effect": {
            "video": relative_change(conditioned.video, unconditioned.video, mask),
            "audio": relative_change(conditioned.audio, unconditioned.audio),
        },
        "caption_dropped": details.prompt.rows_equal(empty),
    }
    if mask is not None:
        conditioning["first_frame_effect"] = {"video": first_frame_effect(details, predict, conditioned.video)}
    attention = {name: stats.as_dict() for name, stats in probe.results.items()}
    return {"attention": attention, "conditioning": conditioning}


def first_frame_effect(details: StepDetails, predict, conditioned_video: torch.Tensor) -> float:
    """Relative change of the video prediction (where the loss counts) when the condition frame is noised too."""
    mask = details.video_loss_mask
    generator = torch.Generator().manual_seed(details.step)
    noise = torch.randn(details.video_latents.shape, generator=generator).to(details.video_latents)
    sigmas = details.sigmas.view(-1, 1, 1, 1, 1)
    noised = (1 - sigmas) * details.video_latents + sigmas * noise
    unconditioned_video = predict(details.prompt, torch.where(mask.bool(), details.noisy_video, noised), None).video
    return relative_change(conditioned_video, unconditioned_video, mask)
