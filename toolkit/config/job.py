"""The whole YAML file: `job`, `config` (name and processes) and `meta`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, SerializeAsAny, field_validator

from toolkit.config.base import ConfigModel
from toolkit.config.notes import ConfigNotes
from toolkit.config.process import ProcessConfig


class JobSpec(ConfigModel):
    """The `config:` section: the run's name and the processes run in order."""

    name: str = Field(
        min_length=1,
        description="Name of the run; its files go to <training_folder>/<name>/ and [name] in any value becomes it.",
    )
    process: list[SerializeAsAny[ProcessConfig]] = Field(
        min_length=1, description="Processes run one after another; each is validated by its `type`."
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        if "/" in name or "\\" in name or name in {".", ".."}:
            raise ValueError(f"name {name!r} is used as a folder name: leave out '/', '\\\\', '.' and '..'")
        return name


class JobConfig(ConfigModel):
    """A validated job file, ai-toolkit shape."""

    job: Literal["extension"] = Field(description="Job kind; always 'extension' (processes come from extensions).")
    config: JobSpec = Field(description="The run's name and its processes.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Free metadata stored with the outputs.")
    _notes: ConfigNotes = PrivateAttr(default_factory=ConfigNotes)

    @property
    def notes(self) -> ConfigNotes:
        """What loading changed or left aside: ai-toolkit spellings mapped, keys not used, values adjusted."""
        return self._notes
