"""What every config model shares, and the checks several of them need."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

_SHORT_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16", "float": "fp32"}
_LONG_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16", "float": "float32"}


def _short_dtype(value: Any) -> Any:
    return _SHORT_DTYPE.get(value, value) if isinstance(value, str) else value


def _long_dtype(value: Any) -> Any:
    return _LONG_DTYPE.get(value, value) if isinstance(value, str) else value


Precision = Annotated[Literal["bf16", "fp16", "fp32"], BeforeValidator(_short_dtype)]
"""Compute dtype of a model component or of training; bfloat16/float16/float32 are read as bf16/fp16/fp32."""

SaveDtype = Annotated[Literal["float16", "bfloat16", "float32"], BeforeValidator(_long_dtype)]
"""Dtype of saved weights; bf16/fp16/fp32 are read as bfloat16/float16/float32 (ai-toolkit accepts both)."""

QuantizationType = Literal["qfloat8", "qint8", "qint4", "uint4"]
"""optimum-quanto weight types."""


class ConfigModel(BaseModel):
    """Base of every config section: unknown keys are errors, numbers may be given where text is expected."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


_DEVICE_PATTERN = re.compile(r"cpu|cuda|cuda:\d+|auto")


def check_device(device: str) -> str:
    """Devices a process can run on: cpu, cuda, cuda:N, or auto (cuda when there is one)."""
    if _DEVICE_PATTERN.fullmatch(device):
        return device
    raise ValueError(f"device {device!r} is not one of cpu, cuda, cuda:N (N = GPU index), auto")
