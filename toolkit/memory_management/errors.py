"""Error types of quantization, layer offloading and the memory plan."""

from __future__ import annotations

from toolkit.errors import ToolkitError, ModelLoadError


class QuantizationError(ToolkitError):
    """A model cannot be quantized as configured (unknown qtype, nothing to quantize)."""


class OffloadError(ToolkitError):
    """Layer offloading cannot be attached or detached as asked."""


class MemoryPlanError(ToolkitError):
    """A memory plan cannot be built from the given settings or checkpoint folder."""


class StreamedLoadError(ModelLoadError):
    """A checkpoint's files do not hold the tensors of the model being streamed into."""
