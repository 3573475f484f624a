"""docs/config.md is what the schema says now: regenerate it with `python -m toolkit.config.reference --write`."""

from __future__ import annotations

from toolkit.config.reference import REFERENCE_PATH, config_reference


def test_the_config_reference_is_up_to_date() -> None:
    assert REFERENCE_PATH.read_text() == config_reference(), (
        "docs/config.md is stale: run `python -m toolkit.config.reference --write`"
    )


def test_the_reference_lists_every_key_of_every_block_with_its_description() -> None:
    from extensions_built_in.sd_trainer.config import TrainProcessConfig
    from toolkit.config import NetworkConfig

    text = config_reference()
    train_section = text.split("# Process `type: sd_trainer`", 1)[1]
    network_block = train_section.split("## `config.process[].network`", 1)[1].split("\n## ", 1)[0]
    for name, field in NetworkConfig.model_fields.items():
        row = next(line for line in network_block.splitlines() if line.startswith(f"| `{field.alias or name}` |"))
        assert " ".join(field.description.split()).replace("|", "\\|") in row
    for name in TrainProcessConfig.model_fields:
        assert f"| `{name}` |" in train_section
    assert "## `config.process[].datasets[]`" in train_section
    assert "## `config.process[].train.ema_config`" in train_section
