"""Resolution buckets: which size a clip gets, and the crop that gets it there."""

from __future__ import annotations

import pytest
import torch

from toolkit.data.buckets import pick_bucket, resize_and_crop
from toolkit.errors import DataError
from toolkit.models.arch_rules import ArchRules

LTX2_GRID = ArchRules("LTX-2", frame_step=8, size_multiple=32)


@pytest.mark.parametrize(
    ("height", "width", "resolutions", "bucket"),
    [
        (64, 64, [64], (64, 64)),  # square, exact
        (720, 1280, [256, 512, 768], (512, 896)),  # 16:9 landscape: 512 x 910.2 -> 896
        (1280, 720, [256, 512, 768], (896, 512)),  # 9:16 portrait
        (1080, 1440, [512, 768], (768, 1024)),  # 4:3, picks the largest size <= 1080
        (600, 800, [256, 512, 768], (512, 672)),  # 512 x 682.7 -> 672
        (100, 300, [256, 512], (256, 768)),  # all sizes larger: upscale to the smallest
        (500, 2000, [96, 480], (480, 1920)),  # 4:1 panorama
        (96, 64, [32, 64], (96, 64)),  # portrait, short side 64 fits exactly
    ],
)
def test_pick_bucket(height: int, width: int, resolutions: list[int], bucket: tuple[int, int]) -> None:
    assert pick_bucket(height, width, resolutions, LTX2_GRID) == bucket
    assert bucket[0] % 32 == 0 and bucket[1] % 32 == 0


@pytest.mark.parametrize("resolutions", [[], [100], [0], [512, 500]])
def test_bad_resolutions_name_the_setting(resolutions: list[int]) -> None:
    with pytest.raises(DataError, match="dataset resolution"):
        pick_bucket(512, 512, resolutions, LTX2_GRID)


def test_buckets_follow_the_arch_s_size_multiple() -> None:
    sixteen = ArchRules("Toy", frame_step=1, size_multiple=16, default_size=64)
    assert pick_bucket(720, 1280, [464], sixteen) == (464, 816)  # 464 x 824.9, on a grid of 16
    with pytest.raises(DataError) as caught:
        pick_bucket(512, 512, [500], sixteen)
    assert str(caught.value) == (
        "dataset resolution [500]: [500] not positive multiples of 16; the Toy VAE needs sizes like 128, 256, 384"
    )


def test_resize_and_crop_keeps_the_centre() -> None:
    # 4 frames 60 x 120 with a bright 20 x 20 block in the centre and dark edges.
    frames = torch.full((4, 3, 60, 120), -1.0)
    frames[:, :, 20:40, 50:70] = 1.0
    cropped = resize_and_crop(frames, (64, 96))
    assert cropped.shape == (4, 3, 64, 96)
    # Scaled by 64/60 to 64 x 128, then 16 columns cropped off each side: the block stays centred.
    assert cropped[0, 0, 32, 48].item() == pytest.approx(1.0)
    assert cropped[0, 0, 2, 2].item() == pytest.approx(-1.0)
    bright_columns = (cropped[0, 0, 32] > 0).nonzero().flatten()
    assert abs((bright_columns.min() + bright_columns.max()).item() / 2 - 47.5) <= 1.0


def test_resize_and_crop_downscales_without_aliasing_beyond_range() -> None:
    frames = torch.rand(2, 3, 128, 256) * 2 - 1
    cropped = resize_and_crop(frames, (64, 96))
    assert cropped.shape == (2, 3, 64, 96)
    assert cropped.min() >= -1.0 - 1e-5 and cropped.max() <= 1.0 + 1e-5
