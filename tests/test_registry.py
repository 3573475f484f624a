"""The extension registry: registration rules, lazy class loading, and discovery of extension packages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from extensions_built_in.generate.config import GenerateProcessConfig
from extensions_built_in.sd_trainer.config import TrainProcessConfig
from toolkit.config import parse_config
from toolkit.errors import ConfigError, ExtensionError
from toolkit.extensions import (
    ExtensionRegistry,
    arch_rules,
    default_arch,
    discover_extensions,
    get_process_config_class,
    load_model_class,
    load_process_class,
    register_process,
    registered_archs,
    registered_process_types,
)
from toolkit.models.arch_rules import ArchRules

RULES = ArchRules("Probe", frame_step=4, size_multiple=16)


def test_built_in_extensions_register_their_types_and_archs() -> None:
    assert {"sd_trainer", "generate"} <= set(registered_process_types())
    assert "ltx2" in registered_archs() and default_arch() == "ltx2"
    assert (arch_rules("ltx2.5").frame_rule, arch_rules("ltx2.5").size_multiple) == ("8k+1", 32)
    assert get_process_config_class("sd_trainer") is TrainProcessConfig
    assert get_process_config_class("generate") is GenerateProcessConfig


def test_duplicate_process_type_names_both_targets() -> None:
    registry = ExtensionRegistry()
    registry.register_process("probe", TrainProcessConfig, "pkg.first:Trainer")
    with pytest.raises(ConfigError) as caught:
        registry.register_process("probe", TrainProcessConfig, "pkg.second:Trainer")
    assert str(caught.value) == (
        "process type 'probe' is registered twice: first -> pkg.first:Trainer, again -> pkg.second:Trainer. "
        "Rename one of the two extensions' process types."
    )


def test_duplicate_arch_is_an_error() -> None:
    registry = ExtensionRegistry()
    registry.register_model_arch("probe_arch", "pkg.one:Model", RULES, default=True)
    with pytest.raises(ConfigError, match="model arch 'probe_arch' is registered twice: first -> pkg.one:Model"):
        registry.register_model_arch("probe_arch", "pkg.two:Model", RULES)
    with pytest.raises(ConfigError, match="'other_arch' is registered as the default, but 'probe_arch' already is"):
        registry.register_model_arch("other_arch", "pkg.two:Model", RULES, default=True)
    with pytest.raises(ConfigError, match="rules must be a toolkit.models.arch_rules.ArchRules, got 32"):
        registry.register_model_arch("third_arch", "pkg.three:Model", 32)  # type: ignore[arg-type]
    assert registry.arch_rules("probe_arch") is RULES and registry.default_arch() == "probe_arch"


def test_registering_the_built_in_type_again_is_refused() -> None:
    with pytest.raises(ConfigError, match="process type 'sd_trainer' is registered twice"):
        register_process("sd_trainer", TrainProcessConfig, "somewhere.else:Trainer")


def test_unknown_type_and_arch_list_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_process_class("trainer")
    assert str(caught.value).startswith("unknown process type 'trainer' (registered: ")
    assert "generate, " in str(caught.value) and "sd_trainer" in str(caught.value)
    with pytest.raises(ConfigError, match=r"unknown model arch 'flux' \(registered: .*ltx2"):
        load_model_class("flux")


def test_registration_checks_its_arguments() -> None:
    registry = ExtensionRegistry()
    with pytest.raises(ConfigError, match="class path must look like 'package.module:ClassName', got 'pkg.Trainer'"):
        registry.register_process("probe", TrainProcessConfig, "pkg.Trainer")
    with pytest.raises(ConfigError, match="config_class must be a pydantic model class, got <class 'dict'>"):
        registry.register_process("probe", dict, "pkg:Trainer")  # type: ignore[arg-type]


def test_classes_are_imported_only_when_asked_for() -> None:
    registry = ExtensionRegistry()
    registry.register_process("decoder", TrainProcessConfig, "json:JSONDecoder")
    registry.register_process("no_module", TrainProcessConfig, "no_such_module_xyz:Thing")
    registry.register_process("no_class", TrainProcessConfig, "json:NoSuchClass")
    registry.register_model_arch("not_a_class", "json:dumps", RULES)
    assert registry.load_process_class("decoder") is json.JSONDecoder
    with pytest.raises(ExtensionError, match="module no_such_module_xyz failed to import: No module named"):
        registry.load_process_class("no_module")
    with pytest.raises(ExtensionError, match="module json has no attribute 'NoSuchClass'"):
        registry.load_process_class("no_class")
    with pytest.raises(ExtensionError, match="json:dumps, which is not a class"):
        registry.load_model_class("not_a_class")


def write_package(root: Path, dotted: str, init_source: str) -> None:
    folder = root.joinpath(*dotted.split("."))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(textwrap.dedent(init_source))


def test_user_extension_package_is_discovered_and_its_type_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_package(tmp_path, "ltx2_registry_test_exts", "")
    write_package(
        tmp_path,
        "ltx2_registry_test_exts.echo",
        """
        from typing import Literal
        from pydantic import Field
        from toolkit.config import ProcessConfig
        from toolkit.extensions import register_model_arch, register_process
        from toolkit.models.arch_rules import ArchRules

        class EchoConfig(ProcessConfig):
            type: Literal["registry_echo"] = Field(description="Echo.")
            words: int = Field(default=1, ge=1, description="How many words.")

        register_process("registry_echo", EchoConfig, "ltx2_registry_test_exts.echo:EchoConfig")
        register_model_arch("registry_echo_arch", "ltx2_registry_test_exts.echo:EchoConfig", ArchRules("Echo", 1, 8))
        """,
    )
    write_package(tmp_path, "ltx2_registry_test_exts._private", "raise RuntimeError('must not be imported')")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert discover_extensions(["ltx2_registry_test_exts"]) == ["ltx2_registry_test_exts.echo"]
    assert "registry_echo" in registered_process_types() and "registry_echo_arch" in registered_archs()
    assert discover_extensions(["ltx2_registry_test_exts"]) == ["ltx2_registry_test_exts.echo"]  # no second registration

    job = parse_config({"job": "extension", "config": {"name": "e", "process": [{"type": "registry_echo", "words": 3}]}})
    echo = job.config.process[0]
    assert type(echo).__name__ == "EchoConfig" and echo.words == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as caught:
        parse_config({"job": "extension", "config": {"name": "e", "process": [{"type": "registry_echo", "word": 3}]}})
    assert caught.value.problems[0].startswith("config.process[0].word: unknown key (did you mean 'words'?")


def test_broken_extension_package_stops_discovery_with_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_package(tmp_path, "ltx2_broken_test_exts", "")
    write_package(tmp_path, "ltx2_broken_test_exts.broken", "import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExtensionError, match=r"extension package ltx2_broken_test_exts.broken \(in .*\) failed to import"):
        ExtensionRegistry().discover(["ltx2_broken_test_exts"])


def test_missing_parent_package_means_no_extensions() -> None:
    assert ExtensionRegistry().discover(["ltx2_no_such_extension_root"]) == []
