"""`logging:` section: the ordinary logger, metrics and inspection (not the verbose trace)."""

from __future__ import annotations

from pydantic import Field

from toolkit.config.base import ConfigModel


class LoggingConfig(ConfigModel):
    """How a process reports progress; `model.verbose` (the trace) is separate."""

    verbose: bool = Field(default=False, description="Set the ordinary logger to DEBUG level.")
    log_every: int = Field(default=10, ge=1, description="Log loss and learning rate every N steps.")
    use_tensorboard: bool = Field(default=True, description="Write TensorBoard events under the run folder.")
    inspect: bool = Field(
        default=False, description="Run the inspection callbacks (latent and prediction checks) during training."
    )
    inspect_every: int = Field(default=100, ge=1, description="With `inspect`, inspect every N steps.")
