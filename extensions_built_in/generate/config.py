"""`type: generate`'s config: the process mapping, validated by pydantic alone (no torch), registered in __init__.py."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from toolkit.config import GenerateConfig, GenerateLoggingConfig, ModelProcessConfig
from toolkit.preflight.output_folders import output_folder_problems
from toolkit.preflight.sampling import generate_problems


class GenerateProcessConfig(ModelProcessConfig):
    """`type: generate`: generate videos with audio from prompts."""

    type: Literal["generate"] = Field(description="Generate videos.")
    output_folder: str = Field(default="output", description="Folder the generated .mp4 files are written to.")
    generate: GenerateConfig = Field(description="Prompts and sampler settings.")
    logging: GenerateLoggingConfig = Field(
        default_factory=GenerateLoggingConfig, description="Log file and level (no metrics: nothing trains)."
    )

    def problems_before_loading(self, where: str) -> list[str]:
        return [
            *output_folder_problems(self.output_folder, f"{where}.output_folder"),
            *generate_problems(self.generate, f"{where}.generate"),
        ]
