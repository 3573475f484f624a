"""Sampling settings that could not produce a sample, found before loading."""

from __future__ import annotations

from pathlib import Path

from toolkit.config import GenerateConfig, ModelProcessConfig, SamplePrompt


def sample_problems(process: ModelProcessConfig, where: str) -> list[str]:
    """Sampling during training: asked for (a `sample:` section, sampling not disabled) but nothing to sample.

    `process` is a training process's config: it has `train` and `sample` blocks (toolkit/config).
    """
    if process.train.disable_sampling:
        return []
    problems = _ctrl_img_problems(process.sample.prompts, f"{where}.sample.prompts")
    if "sample" in process.model_fields_set and not process.sample.prompts:
        problems.append(
            f"{where}.sample.prompts: sampling is on (every {process.sample.sample_every} steps) but there are "
            "no prompts, so no sample would be made; add prompts, or set train.disable_sampling: true"
        )
    return problems


def generate_problems(generate: GenerateConfig, where: str) -> list[str]:
    return _ctrl_img_problems(generate.prompts, f"{where}.prompts")


def _ctrl_img_problems(prompts: list[SamplePrompt], where: str) -> list[str]:
    return [
        f"{where}[{index}].ctrl_img: {prompt.ctrl_img} is not a file (relative paths are from {Path.cwd()}); "
        "fix the path or remove ctrl_img"
        for index, prompt in enumerate(prompts)
        if prompt.ctrl_img is not None and not Path(prompt.ctrl_img).expanduser().is_file()
    ]
