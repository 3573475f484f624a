"""`datasets:` entries: a folder of clips or images with captions, and how they are cut."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from toolkit.config.arch_rules import rules_in_use
from toolkit.config.base import ConfigModel


def _bucket_size(size: int) -> int:
    return rules_in_use().check_size(size, "resolution")


class DatasetConfig(ConfigModel):
    """One training folder: videos (with audio) or images, each with a caption file beside it."""

    folder_path: str = Field(
        description="Folder of clips/images and captions; a relative path is taken from the working directory."
    )
    caption_ext: str = Field(default="txt", description="Extension of the caption file next to each clip.")
    default_caption: str = Field(default="", description="Caption used for a clip that has no caption file.")
    caption_dropout_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Probability of training a step on an empty caption (0..1)."
    )
    num_frames: int = Field(
        default_factory=lambda: rules_in_use().default_num_frames,
        ge=1,
        description="Frames per training clip, a count the model takes (e.g. 8k+1 for LTX-2: 1, 9, 17, ...).",
    )
    shrink_video_to_frames: bool = Field(
        default=True,
        description=(
            "Spread the `num_frames` frames evenly over the whole clip (ai-toolkit's default); "
            "false takes the first `num_frames` frames at the clip's frame rate."
        ),
    )
    auto_frame_count: bool = Field(
        default=False,
        description=(
            "Train each clip on as many frames as it has (rounded down to a count the model takes) instead of "
            "`num_frames`; "
            "clips of different lengths go to different buckets."
        ),
    )
    num_repeats: int = Field(
        default=1, ge=1, description="Times each clip of this folder appears per epoch (balances small folders)."
    )
    flip_x: bool = Field(default=False, description="Also train on each clip mirrored left-right (doubles the clips).")
    flip_y: bool = Field(default=False, description="Also train on each clip flipped upside down (doubles the clips).")
    shuffle_tokens: bool = Field(
        default=False,
        description="Shuffle the comma-separated parts of each caption every time the caption is used.",
    )
    is_reg: bool = Field(
        default=False,
        description="Regularisation folder: its clips are trained with the LoRA at `network_weight` (keeps the base model's behaviour).",
    )
    is_val: bool = Field(
        default=False,
        description=(
            "Held-out folder: its clips are never trained on; they are encoded like the training clips (same "
            "caches) and give the evaluation loss every `train.eval_every` steps."
        ),
    )
    network_weight: float = Field(
        default=1.0,
        description="LoRA strength while training on this folder's clips (1: the full LoRA; used with `is_reg`).",
    )
    resolution: list[Annotated[int, AfterValidator(_bucket_size)]] = Field(
        default_factory=lambda: [rules_in_use().default_size],
        min_length=1,
        description="Bucket sizes of the short side in pixels, each a multiple of the model's (e.g. 32 for LTX-2).",
    )
    fps: float | None = Field(
        default=None, gt=0.0, description="Resample clips to this frame rate; null keeps each clip's own rate."
    )
    cache_latents_to_disk: bool = Field(
        default=False, description="Encode each clip once and keep its video/audio latents on disk."
    )
    cache_text_embeddings: bool = Field(
        default=False, description="Encode each caption once and keep its prompt embeddings on disk."
    )
    on_corrupt: Literal["error", "skip"] = Field(
        default="error", description="What to do with a clip that cannot be decoded: stop with an error, or skip it."
    )
    missing_audio: Literal["error", "silence"] = Field(
        default="error",
        description=(
            "What to do with a clip without an audio stream, or with a silent one (RMS below -60 dBFS): "
            "stop with an error, or train on silence."
        ),
    )
    audio: bool = Field(
        default=True,
        description=(
            "Train the audio stream together with the video; false trains the video only: the clips' audio is "
            "not read or encoded, the audio stream gets silence and there is no audio loss for these clips."
        ),
    )

    @field_validator("folder_path")
    @classmethod
    def _folder_exists(cls, folder_path: str) -> str:
        folder = Path(folder_path).expanduser()
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise ValueError(
                f"dataset folder {str(folder.resolve())!r} {what} "
                f"(working directory: {Path.cwd()}); point folder_path at a folder of clips and captions"
            )
        return folder_path

    @field_validator("num_frames")
    @classmethod
    def _frames_follow_the_arch(cls, num_frames: int) -> int:
        return rules_in_use().check_frame_count(num_frames)

    @model_validator(mode="after")
    def _held_out_clips_are_not_augmented(self) -> DatasetConfig:
        """A held-out folder is measured, not trained: what only changes training has no meaning there."""
        if not self.is_val:
            return self
        training_only = {
            "is_reg": self.is_reg,
            "num_repeats": self.num_repeats != 1,
            "flip_x": self.flip_x,
            "flip_y": self.flip_y,
            "shuffle_tokens": self.shuffle_tokens,
            "caption_dropout_rate": self.caption_dropout_rate > 0,
        }
        set_keys = [key for key, is_set in training_only.items() if is_set]
        if set_keys:
            raise ValueError(
                f"is_val: true with {', '.join(set_keys)}: a held-out folder is only evaluated (each clip once, "
                f"as it is, with its caption), never trained; remove {', '.join(set_keys)} from it, or is_val"
            )
        return self
