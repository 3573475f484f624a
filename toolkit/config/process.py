"""Process entries of `config.process`: the base that dispatches on `type`, and the base of model processes.

Each process type's own config class lives with its extension (extensions_built_in/sd_trainer/config.py,
extensions_built_in/generate/config.py) and is registered with it; the toolkit knows only these bases.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import Field, ModelWrapValidatorHandler, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from toolkit.config.arch_rules import arch_of, validating_for
from toolkit.config.base import ConfigModel, check_device
from toolkit.config.model import ModelConfig
from toolkit.errors import ConfigError
from toolkit.extensions import get_process_config_class, registered_process_types


class ProcessConfig(ConfigModel):
    """One entry of `config.process`; validated by the config class its `type` registered.

    Validating a mapping against `ProcessConfig` itself looks `type` up in the
    extension registry and validates the whole mapping with that class, so
    errors point at the right keys and the result is, e.g., a
    `TrainProcessConfig`.
    """

    type: str = Field(description="Process kind, as registered by an extension (sd_trainer, generate, ...).")

    def problems_before_loading(self, where: str) -> list[str]:
        """What the values point to (folders, files, layers), checked before any model loads (toolkit/preflight).

        One line per problem, each starting with its key path under `where`; a process type adds its own checks.
        """
        return []

    def run_folder_problems(self, where: str, name: str) -> list[str]:
        """What the process's run folder (`<its output folder>/<name>`, `name` being `config.name`) makes
        impossible, checked before loading: names too long for its file system, a saved run the config
        cannot resume. One line per problem, each starting with its key path; none by default."""
        return []

    def notices_before_loading(self, where: str) -> list[str]:
        """What the run will do by rule that the user should know before it starts (a short clip spread, frames
        scaled up, audio downmixed, files skipped), found without weights; one line each, starting with its key
        path under `where`. Printed with the config notes, dry run or not.
        """
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _validate_with_registered_class(cls, data: Any, handler: ModelWrapValidatorHandler[ProcessConfig]) -> Any:
        if cls is not ProcessConfig or not isinstance(data, dict):
            return handler(data)
        registered_class = cls.registered_class_for(data)
        if registered_class is None:
            raise _unknown_type_error(data.get("type"), data, registered_process_types())
        return registered_class.model_validate(data)

    @staticmethod
    def likely_class_for(data: dict[str, Any]) -> tuple[str, type[ProcessConfig]] | None:
        """For a mapping whose `type` is missing or unknown: the registered type its keys fit best.

        A close spelling of a registered type wins; otherwise the type whose config class has the
        most of the mapping's keys. Used to report the other problems alongside the type error.
        """
        known = registered_process_types()
        type_name = data.get("type")
        close = difflib.get_close_matches(type_name, known, n=1, cutoff=0.6) if isinstance(type_name, str) else []
        candidates = close or known
        scored = []
        for name in candidates:
            config_class = get_process_config_class(name)
            if isinstance(config_class, type) and issubclass(config_class, ProcessConfig):
                scored.append((len(set(data) & set(config_class.model_fields)), name, config_class))
        if not scored:
            return None
        _, name, config_class = max(scored, key=lambda entry: entry[0])
        return name, config_class

    @staticmethod
    def registered_class_for(data: dict[str, Any]) -> type[ProcessConfig] | None:
        """The config class registered for `data["type"]`, or None when that type is not registered."""
        type_name = data.get("type")
        if not isinstance(type_name, str) or type_name not in registered_process_types():
            return None
        registered_class = get_process_config_class(type_name)
        if not issubclass(registered_class, ProcessConfig):
            raise ConfigError(
                f"process type {type_name!r} is registered with {registered_class.__name__}, "
                "which must subclass toolkit.config.ProcessConfig"
            )
        return registered_class


def _unknown_type_error(type_name: Any, data: dict[str, Any], known: list[str]) -> ValidationError:
    """The type error, followed by the problems of the other keys checked as the likeliest registered type."""
    listing = ", ".join(known) or "none"
    likely = ProcessConfig.likely_class_for(data)
    checked_as = f"; the other keys were checked as {likely[0]}" if likely is not None else ""
    if type_name is None:
        error = PydanticCustomError(
            "missing_process_type",
            "required key missing (registered process types: {known}){checked_as}",
            {"known": listing, "checked_as": checked_as},
        )
        value: Any = data
    else:
        error = PydanticCustomError(
            "unknown_process_type",
            "unknown process type {type_name} (registered: {known}){checked_as}",
            {"type_name": repr(type_name), "known": listing, "checked_as": checked_as},
        )
        value = type_name
    details: list[InitErrorDetails] = [{"type": error, "loc": ("type",), "input": value}]
    if likely is not None:
        name, config_class = likely
        try:
            config_class.model_validate({**data, "type": name})
        except ValidationError as others:
            details += [_as_init_details(detail) for detail in others.errors(include_url=False)]
    return ValidationError.from_exception_data(ProcessConfig.__name__, details)


def _as_init_details(detail: ErrorDetails) -> InitErrorDetails:
    """A reported error detail fed back into a new ValidationError (custom errors keep their message)."""
    kind = detail["type"]
    error: Any = kind
    if kind in {"value_error", "assertion_error"} or kind.startswith(("missing_process", "unknown_process")):
        error = PydanticCustomError(kind, "{message}", {"message": detail["msg"], **(detail.get("ctx") or {})})
    init: InitErrorDetails = {"type": error, "loc": tuple(detail["loc"]), "input": detail.get("input")}
    if "ctx" in detail and not isinstance(error, PydanticCustomError):
        init["ctx"] = detail["ctx"]
    return init


class ModelProcessConfig(ProcessConfig):
    """A process that loads a model on a device; the text encoder follows that device unless told otherwise."""

    device: str = Field(default="cpu", description="cpu, cuda, cuda:N or auto (cuda when available).")
    model: ModelConfig = Field(description="Base model the process loads.")

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, device: str) -> str:
        return check_device(device)

    @model_validator(mode="wrap")
    @classmethod
    def _values_follow_the_arch(cls, data: Any, handler: ModelWrapValidatorHandler[ModelProcessConfig]) -> Any:
        """Frame counts, sizes and their defaults follow this process's `model.arch` (toolkit/config/arch_rules.py)."""
        with validating_for(arch_of(data)):
            return handler(data)

    @model_validator(mode="after")
    def _text_encoder_follows_device(self) -> ModelProcessConfig:
        if self.model.te_device is None:
            self.model.te_device = self.device
        return self
