"""Extension registry: which process types and model archs exist.

An extension is a package under `extensions_built_in/` (shipped) or
`extensions/` (the user's, next to run.py) whose `__init__.py` registers what
it provides, the way ai-toolkit's `AI_TOOLKIT_EXTENSIONS` lists do:

    from toolkit.extensions import register_process
    from .config import TrainProcessConfig       # a toolkit.config.ProcessConfig subclass
    register_process("sd_trainer", TrainProcessConfig, "extensions_built_in.sd_trainer.SDTrainer:SDTrainer")

Registration only records import paths ("module:Class"), so discovering
every extension stays cheap: torch and diffusers are imported when a job
actually builds a process or a model, not when a config is validated. A model
arch also registers its shape rules (toolkit/models/arch_rules.py, plain
Python), which the config loader reads before anything is loaded, and one arch
says it is the default (`model.arch` when a job does not name one):

    from toolkit.extensions import register_model_arch
    from .ltx2.arch_rules import LTX2_RULES
    register_model_arch("ltx2", "extensions_built_in.diffusion_models.ltx2.LTX2Model:LTX2Model", LTX2_RULES, default=True)
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from toolkit.errors import ConfigError, ExtensionError
from toolkit.models.arch_rules import ArchRules

DEFAULT_EXTENSION_PACKAGES: tuple[str, ...] = ("extensions_built_in", "extensions")
"""Parent packages whose subpackages are imported by `discover_extensions()`."""


@dataclass(frozen=True)
class ArchRegistration:
    """One model arch: where its model class lives, and its shape rules (read without importing that class)."""

    arch: str
    model_class_path: str
    rules: ArchRules


@dataclass(frozen=True)
class ProcessRegistration:
    """One process type: the config class that validates it and where its code lives."""

    type_name: str
    config_class: type[BaseModel]
    process_class_path: str


class ExtensionRegistry:
    """Process types and model archs, keyed by the names used in YAML.

    One instance (module level) serves the whole program; tests may build
    their own to exercise registration rules in isolation.
    """

    def __init__(self) -> None:
        self._processes: dict[str, ProcessRegistration] = {}
        self._archs: dict[str, ArchRegistration] = {}
        self._default_arch: str | None = None
        self._discovered = False

    # -- registration ------------------------------------------------------

    def register_process(self, type_name: str, config_class: type[BaseModel], process_class_path: str) -> None:
        _check_class_path(process_class_path, f"process type {type_name!r}")
        if not (isinstance(config_class, type) and issubclass(config_class, BaseModel)):
            raise ConfigError(
                f"process type {type_name!r}: config_class must be a pydantic model class, got {config_class!r}"
            )
        existing = self._processes.get(type_name)
        if existing is not None:
            raise ConfigError(
                f"process type {type_name!r} is registered twice: first -> {existing.process_class_path}, "
                f"again -> {process_class_path}. Rename one of the two extensions' process types."
            )
        self._processes[type_name] = ProcessRegistration(type_name, config_class, process_class_path)

    def register_model_arch(self, arch: str, model_class_path: str, rules: ArchRules, default: bool = False) -> None:
        _check_class_path(model_class_path, f"model arch {arch!r}")
        if not isinstance(rules, ArchRules):
            raise ConfigError(f"model arch {arch!r}: rules must be a toolkit.models.arch_rules.ArchRules, got {rules!r}")
        existing = self._archs.get(arch)
        if existing is not None:
            raise ConfigError(
                f"model arch {arch!r} is registered twice: first -> {existing.model_class_path}, "
                f"again -> {model_class_path}. Rename one of the two extensions' archs."
            )
        if default and self._default_arch is not None:
            raise ConfigError(
                f"model arch {arch!r} is registered as the default, but {self._default_arch!r} already is; "
                "register only one arch with default=True"
            )
        self._archs[arch] = ArchRegistration(arch, model_class_path, rules)
        if default:
            self._default_arch = arch

    # -- lookup ------------------------------------------------------------

    def registered_process_types(self) -> list[str]:
        self.ensure_discovered()
        return sorted(self._processes)

    def registered_archs(self) -> list[str]:
        self.ensure_discovered()
        return sorted(self._archs)

    def get_process_config_class(self, type_name: str) -> type[BaseModel]:
        return self._process(type_name).config_class

    def load_process_class(self, type_name: str) -> type:
        registration = self._process(type_name)
        return _import_class(registration.process_class_path, f"process type {type_name!r}")

    def load_model_class(self, arch: str) -> type:
        return _import_class(self._arch(arch).model_class_path, f"model arch {arch!r}")

    def arch_rules(self, arch: str) -> ArchRules:
        return self._arch(arch).rules

    def default_arch(self) -> str:
        self.ensure_discovered()
        if self._default_arch is None:
            raise ConfigError(
                f"no model arch is registered as the default (registered: {_listing(self._archs)}); "
                "set model.arch in the job file"
            )
        return self._default_arch

    def _arch(self, arch: str) -> ArchRegistration:
        self.ensure_discovered()
        if arch not in self._archs:
            raise ConfigError(
                f"unknown model arch {arch!r} (registered: {_listing(self._archs)}). "
                "An extension adds one with toolkit.extensions.register_model_arch()."
            )
        return self._archs[arch]

    def _process(self, type_name: str) -> ProcessRegistration:
        self.ensure_discovered()
        if type_name not in self._processes:
            raise ConfigError(
                f"unknown process type {type_name!r} (registered: {_listing(self._processes)}). "
                "An extension adds one with toolkit.extensions.register_process()."
            )
        return self._processes[type_name]

    # -- discovery ---------------------------------------------------------

    def ensure_discovered(self) -> None:
        """Run the default discovery once, the first time anything is looked up."""
        if self._discovered:
            return
        # Set first: an extension that looks something up while it is being
        # imported must not start the discovery again.
        self._discovered = True
        try:
            self.discover(DEFAULT_EXTENSION_PACKAGES)
        except BaseException:
            self._discovered = False
            raise

    def discover(self, packages: Sequence[str]) -> list[str]:
        """Import every subpackage of each parent package; return the names imported.

        A parent package that is not importable is skipped (a user without an
        `extensions/` folder has no extensions); a subpackage that fails to
        import is an error, because silently missing an extension turns into
        a confusing "unknown process type" later.
        """
        imported: list[str] = []
        for parent_name in packages:
            try:
                parent = importlib.import_module(parent_name)
            except ModuleNotFoundError as error:
                if error.name == parent_name:
                    continue
                raise
            for module_info in pkgutil.iter_modules(getattr(parent, "__path__", [])):
                if not module_info.ispkg or module_info.name.startswith("_"):
                    continue
                name = f"{parent_name}.{module_info.name}"
                try:
                    importlib.import_module(name)
                except ImportError as error:
                    raise ExtensionError(
                        f"extension package {name} (in {module_info.module_finder.path}) failed to import: {error}. "
                        "Fix or remove that folder."
                    ) from error
                imported.append(name)
        return imported


def _check_class_path(class_path: str, what: str) -> None:
    module, _, attribute = class_path.partition(":")
    if not module or not attribute:
        raise ConfigError(f"{what}: class path must look like 'package.module:ClassName', got {class_path!r}")


def _import_class(class_path: str, what: str) -> type:
    module_name, _, class_name = class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ExtensionError(f"{what} points to {class_path}, but module {module_name} failed to import: {error}") from error
    try:
        found: Any = getattr(module, class_name)
    except AttributeError as error:
        raise ExtensionError(
            f"{what} points to {class_path}, but module {module_name} has no attribute {class_name!r}"
        ) from error
    if not isinstance(found, type):
        raise ExtensionError(f"{what} points to {class_path}, which is not a class but {found!r}")
    return found


def _listing(names: Sequence[str] | dict[str, Any]) -> str:
    return ", ".join(sorted(names)) or "none"


REGISTRY = ExtensionRegistry()
"""The program-wide registry that the functions below use."""


def register_process(type_name: str, config_class: type[BaseModel], process_class_path: str) -> None:
    """Make `type: <type_name>` valid in a job's process list.

    `config_class` validates the process's YAML mapping; `process_class_path`
    ("module:Class") names the process class, imported only when a job runs.
    """
    REGISTRY.register_process(type_name, config_class, process_class_path)


def register_model_arch(arch: str, model_class_path: str, rules: ArchRules, default: bool = False) -> None:
    """Make `model.arch: <arch>` valid; `model_class_path` is "module:Class", imported lazily; `rules` are
    the arch's shape rules (the class's `rules`); `default`: the arch a job gets when it names none."""
    REGISTRY.register_model_arch(arch, model_class_path, rules, default)


def get_process_config_class(type_name: str) -> type[BaseModel]:
    """The config class registered for a process type; ConfigError listing the known types otherwise."""
    return REGISTRY.get_process_config_class(type_name)


def load_process_class(type_name: str) -> type:
    """Import and return the process class registered for a process type."""
    return REGISTRY.load_process_class(type_name)


def load_model_class(arch: str) -> type:
    """Import and return the model class registered for an arch."""
    return REGISTRY.load_model_class(arch)


def arch_rules(arch: str) -> ArchRules:
    """The shape rules registered for an arch, without importing its model class."""
    return REGISTRY.arch_rules(arch)


def default_arch() -> str:
    """The arch registered as the default: `model.arch` when a job does not name one."""
    return REGISTRY.default_arch()


def registered_process_types() -> list[str]:
    """Sorted names of every registered process type (runs discovery first)."""
    return REGISTRY.registered_process_types()


def registered_archs() -> list[str]:
    """Sorted names of every registered model arch (runs discovery first)."""
    return REGISTRY.registered_archs()


def discover_extensions(packages: Sequence[str] = DEFAULT_EXTENSION_PACKAGES) -> list[str]:
    """Import the extension subpackages of `packages`, so that they register themselves.

    The default packages are always discovered first. Importing is
    idempotent: a package already imported does not register again. Returns
    the subpackage names found under `packages`.
    """
    REGISTRY.ensure_discovered()
    return REGISTRY.discover(packages)
