"""Registers the `generate` process: videos with audio from prompts (code in GenerateProcess.py, imported lazily)."""

from __future__ import annotations

from toolkit.extensions import register_process

from .config import GenerateProcessConfig

register_process("generate", GenerateProcessConfig, "extensions_built_in.generate.GenerateProcess:GenerateProcess")
