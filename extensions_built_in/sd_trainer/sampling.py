"""Samples during training: each configured prompt to an .mp4 with audio under `samples/`.

A prompt with a `ctrl_img` samples image-to-video from that image; the others text-to-video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ConfigError
from toolkit.models.generation import GenerationSettings
from toolkit.models.model_inputs import PromptEmbeds
from toolkit.trace import get_tracer

SAMPLES_DIR = "samples"


@dataclass
class EncodedSamplePrompt:
    index: int
    prompt: str
    seed: int
    embeds: PromptEmbeds  # encoded with what sampling reads besides (keep_text_states)
    control_image: str | None = None


def first_sample_due(step: int, train_config, sample_config) -> bool:
    """The baseline sample before training, decided as ai-toolkit decides it: never with `skip_first_sample`
    (it wins over `force_first_sample`); with `force_first_sample` also when resuming; else at step 0,
    unless `sample_start_step` defers sampling."""
    if train_config.skip_first_sample:
        return False
    if train_config.force_first_sample:
        return True
    return step == 0 and sample_config.sample_start_step == 0


def sample_due(step: int, train_config, sample_config) -> bool:
    """After step `step`: every `sample_every` steps and at the end, from `sample_start_step` on."""
    periodic = step % sample_config.sample_every == 0 or step == train_config.steps
    return periodic and step >= sample_config.sample_start_step


class TrainingSampler:
    """Encodes the sample prompts once (before the text encoder is unloaded) and samples on demand."""

    def __init__(self, model, sample_config, run_folder: Path, caption_transform=lambda text: text):
        self.model = model
        self.config = sample_config
        self.folder = run_folder / SAMPLES_DIR
        self.caption_transform = caption_transform
        self.prompts: list[EncodedSamplePrompt] = []
        self.negative = None

    def encode_prompts(self) -> None:
        config = self.config
        for index, entry in enumerate(config.prompts):
            text = self.caption_transform(entry.prompt)
            seed = entry.seed if entry.seed is not None else config.seed + (index if config.walk_seed else 0)
            if entry.ctrl_img is not None and not Path(entry.ctrl_img).is_file():
                # Found now rather than at the first sample, after the text encoder is gone and steps have run.
                raise ConfigError(
                    f"sample.prompts[{index}].ctrl_img: {entry.ctrl_img} is not a file "
                    f"(relative paths are from {Path.cwd()}); fix the path or remove ctrl_img"
                )
            embeds = self.model.get_prompt_embeds([text], keep_text_states=True)
            self.prompts.append(EncodedSamplePrompt(index, text, seed, embeds, entry.ctrl_img))
        if config.guidance_scale > 1.0 and self.prompts:
            self.negative = self.model.get_prompt_embeds([config.neg], keep_text_states=True)

    def sample(self, step: int) -> list[Path]:
        config = self.config
        paths = []
        with get_tracer().span("sample", step=step, prompts=len(self.prompts), folder=self.folder) as span:
            for entry in self.prompts:
                settings = GenerationSettings.from_sampling(config, entry.seed, entry.control_image)
                path = self.folder / f"{step:09d}_{entry.index}.mp4"
                clip = self.model.generate_single_image(entry.prompt, path, settings, entry.embeds, self.negative)
                paths.append(clip.path)
            span.set(files=[str(p) for p in paths])
        return paths
