"""What a model arch accepts as clip shapes and sampling settings, answered before its code is imported.

A video model's VAE compresses time and space by fixed factors, so it takes only some frame
counts and sizes (e.g. LTX-2: 8k+1 frames, sides that are multiples of 32). Each arch registers
its `ArchRules` with the extension registry (`toolkit.extensions.register_model_arch(..., rules=...)`)
and its model class carries the same object (`BaseModel.rules`). The config loader reads them from
the registry to move frame counts and sizes onto the arch's grid before validating, and the data
and preflight code bucket clips by them; none of that imports the model's modules or torch.
Plain Python: this module imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchRules:
    """One arch's shape rules, its sampling floor and the defaults it suggests.

    model_name: how messages name the model ("LTX-2 needs 8k+1 frames").
    frame_step: valid frame counts are `frame_step * k + 1` (the VAE compresses time by `frame_step`
    after the first frame); 1 takes any count.
    size_multiple: widths, heights and bucket sizes are positive multiples of it (the VAE's spatial factor).
    min_sample_steps: the fewest denoising steps its scheduler can take; fewer are raised to it.
    default_fps: the frame rate its pipelines default to: a still image trains at it, samples default to it.
    default_size: default sample width and height, and the default bucket size of a dataset.
    default_num_frames: default frames of a training clip and of a sample.
    """

    model_name: str
    frame_step: int
    size_multiple: int
    min_sample_steps: int = 1
    default_fps: float = 24.0
    default_size: int = 64
    default_num_frames: int = 9

    def __post_init__(self) -> None:
        for name in ("frame_step", "size_multiple", "min_sample_steps", "default_size", "default_num_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"ArchRules({self.model_name!r}).{name} must be at least 1, got {getattr(self, name)}")
        if self.default_size % self.size_multiple or (self.default_num_frames - 1) % self.frame_step:
            raise ValueError(
                f"ArchRules({self.model_name!r}): the defaults ({self.default_size} px, {self.default_num_frames} "
                f"frames) must follow its own rules ({self.size_rule}, {self.frame_rule} frames)"
            )

    # -- frame counts ------------------------------------------------------------------------
    @property
    def frame_rule(self) -> str:
        """The valid frame counts as users read them: "8k+1"."""
        return f"{self.frame_step}k+1"

    @property
    def frames_why(self) -> str:
        return f"{self.model_name} needs {self.frame_rule} frames"

    def nearest_frame_count(self, frames: int) -> int:
        """The valid count nearest `frames` (>= 1), the larger one on a tie."""
        below = self.frame_count_at_most(frames)
        above = below + self.frame_step
        return below if frames - below < above - frames else above

    def frame_count_at_most(self, frames: int) -> int:
        """The largest valid count not above `frames` (>= 1)."""
        return (frames - 1) // self.frame_step * self.frame_step + 1

    def check_frame_count(self, frames: int) -> int:
        """`frames` when valid; otherwise a ValueError naming the two nearest valid counts."""
        below = self.frame_count_at_most(frames)
        if below == frames:
            return frames
        raise ValueError(
            f"{frames} frames is not {self.frame_rule} as {self.model_name} needs "
            f"(nearest valid: {below} or {below + self.frame_step})"
        )

    # -- sizes -------------------------------------------------------------------------------
    @property
    def size_rule(self) -> str:
        return f"multiples of {self.size_multiple}"

    @property
    def size_why(self) -> str:
        return f"{self.model_name} needs {self.size_rule}"

    def nearest_size(self, size: int) -> int:
        """The multiple nearest `size` (>= 1), the larger one on a tie, never below `size_multiple`."""
        below = self.size_at_most(size)
        above = below + self.size_multiple
        return below if below > 0 and size - below < above - size else above

    def size_at_most(self, size: float) -> int:
        """The largest multiple not above `size` (0 below the first one)."""
        # The small epsilon keeps 511.9999 (float error from a scale) at 512.
        return int(size / self.size_multiple + 1e-6) * self.size_multiple

    def check_size(self, size: int, what: str) -> int:
        """`size` when it is a positive multiple; otherwise a ValueError naming `what` and the nearest valid ones."""
        if size > 0 and size % self.size_multiple == 0:
            return size
        if size < self.size_multiple:
            nearest = str(self.size_multiple)
        else:
            below = self.size_at_most(size)
            nearest = f"{below} or {below + self.size_multiple}"
        raise ValueError(
            f"{what} {size} is not a positive multiple of {self.size_multiple} as {self.model_name} needs "
            f"(nearest valid: {nearest})"
        )

    def example_sizes(self) -> str:
        """Typical valid sizes for a message: "256, 512, 768" for multiples of 32."""
        return ", ".join(str(self.size_multiple * factor) for factor in (8, 16, 24))

    # -- sampling ----------------------------------------------------------------------------
    @property
    def sample_steps_why(self) -> str:
        return f"{self.model_name}'s scheduler needs at least {self.min_sample_steps} steps"
