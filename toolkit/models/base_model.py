"""What every model arch implements: the one interface the toolkit and the processes reach a model through.

The toolkit never imports a model's package. It asks the extension registry
for the class registered under `model.arch` (`toolkit.extensions.load_model_class`)
and calls what is declared here: before any weights load, the class answers
for its shape rules, its LoRA targets, the key names of its LoRA files, its tiny
model and its memory plan; once loaded, an instance runs the phases of training
and sampling.
Dependencies point down: processes -> this interface -> toolkit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from toolkit.models.arch_rules import ArchRules
from toolkit.models.generation import GeneratedClip, GenerationSettings


@dataclass(frozen=True)
class LoraFileKeys:
    """How one arch's LoRA keys are named in the original (ComfyUI / the model authors') file format.

    `to_original` maps one peft/diffusers module or parameter name (``transformer_blocks.0.attn1.to_q``)
    to the original checkpoint's name; `to_diffusers` turns a whole original-format state dict
    (keys under ``diffusion_model.``) into diffusers keys (under ``transformer.``).
    """

    to_original: Callable[[str], str]
    to_diffusers: Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class BaseModelNames:
    """How LoRA browsers and UIs name a base model: what a LoRA file's `modelspec.*` and `ss_*` header keys say.

    `architecture` is the SAI model spec's base architecture (``ltx-2.3``; a LoRA file's
    `modelspec.architecture` is ``<architecture>/lora``); `implementations` maps each `save.format` to
    whose key names that format uses (`modelspec.implementation`).
    """

    architecture: str
    implementations: Mapping[str, str]


class BaseModel(ABC):
    """A model arch: class-level answers needed before loading, and the phases it runs once loaded.

    The class is registered with `toolkit.extensions.register_model_arch(arch, "package.module:Class")`
    and imported only when a job needs it.
    """

    arch: ClassVar[str]
    """The `model.arch` this class was written for (a class may be registered under several)."""

    rules: ClassVar[ArchRules]
    """Frame counts, sizes and sampling floor the model takes, and its default sample sizes. The same object is
    registered with the arch (`register_model_arch(..., rules)`), so the config loader and the dataset read
    them through `toolkit.extensions.arch_rules(arch)` without importing this class."""

    # -- before loading: answered by the class, no weights read ------------------------------
    @classmethod
    @abstractmethod
    def lora_target_pattern(cls) -> str:
        """Regular expression (re.fullmatch on module names) of the linear layers a LoRA adapts when
        `network.target_modules` is not set."""

    @classmethod
    @abstractmethod
    def lora_file_keys(cls) -> LoraFileKeys:
        """The key mapping between peft's names and the original LoRA file format (`save.format: comfy`)."""

    @classmethod
    @abstractmethod
    def tiny_names(cls) -> Mapping[str, str]:
        """`model.name_or_path` values that select a small model the project builds locally -> its version."""

    @classmethod
    @abstractmethod
    def ensure_tiny(cls, name: str, cache_dir: str | Path | None = None) -> Path:
        """Build (once, then reuse) the tiny model `name` (one of `tiny_names()`) and return its folder."""

    @classmethod
    @abstractmethod
    def memory_plan_components(cls, settings) -> Any:
        """The memory plan's view of the model for `settings` (toolkit.memory_management.plan_settings.
        MemoryPlanSettings): a `plan_components.PlannedModel` with each weight-holding component on the
        meta device, in load order, and its role in a LoRA run. No weights are read."""

    @classmethod
    def quantization_excludes(cls) -> Mapping[str, tuple[str, ...]]:
        """Component -> fnmatch patterns of its modules that stay at full precision when it is quantized."""
        return {}

    @classmethod
    def lora_target_problems(cls, model_config, network_config) -> list[tuple[str, str]]:
        """(config key, message) for each LoRA filter that selects no layer; an arch without a check says none."""
        return []

    @classmethod
    def component_problems(cls, model_config) -> list[str]:
        """Before loading: one line per pair of the checkpoint's components that do not belong together (parts of
        different releases: other latent channels, another version's decoder or text encoder), read from their
        configs, no weight read; the dry run reports them as config errors. None by default."""
        return []

    @classmethod
    def checkpoint_report(cls, model_config) -> list[str]:
        """`--dry-run`: lines describing the checkpoint (its version, its components); none by default."""
        return []

    @classmethod
    def checkpoint_version(cls, model_config) -> str | None:
        """The model version the memory plan plans for, or None to plan the settings' default."""
        return None

    # -- the phases, in the order they happen ------------------------------------------------
    @abstractmethod
    def load_model(self) -> "BaseModel":
        """Read every component, place it on its device and dtype; returns self."""

    @abstractmethod
    def encode_images(self, video, clip: str | None = None):
        """Pixels to the model's video latents."""

    @abstractmethod
    def encode_audio(self, *args, **kwargs):
        """A waveform to the model's audio latents."""

    @abstractmethod
    def get_prompt_embeds(self, prompts: list[str], keep_text_states: bool = False):
        """Prompts to the embeddings the transformer reads."""

    @abstractmethod
    def get_noise_prediction(self, *args, **kwargs):
        """One denoiser forward on noisy latents."""

    @abstractmethod
    def generate_single_image(self, prompt: str, path: Path, settings: GenerationSettings) -> GeneratedClip:
        """Sample one clip for `prompt` and write it to `path`."""

    @abstractmethod
    def save_model(self, folder: str | Path) -> Path:
        """Write the model (or what training changed in it) under `folder`."""

    def metadata(self) -> dict[str, str]:
        """Strings describing the base model for a saved LoRA's header and the run's state.json."""
        return {}

    def base_model_names(self) -> BaseModelNames | None:
        """How LoRA browsers name this (loaded) base model; None when the arch does not say."""
        return None
