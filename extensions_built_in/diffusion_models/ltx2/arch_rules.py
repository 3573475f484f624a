"""LTX-2's shape rules, registered with its archs so the config loader reads them without importing LTX2Model.

The video VAE compresses time 8x after the first frame and space 32x, so a clip has 8k+1 frames
and sides that are multiples of 32. The scheduler stretches its noise levels to a terminal value,
which divides by zero with a single step (NaN frames that then fail to encode), so sampling takes
at least 2 steps. The pipelines default to 24 fps, so a still image trains at 24 fps and conditions
the model the way inference will.
"""

from __future__ import annotations

from toolkit.models.arch_rules import ArchRules

LTX2_RULES = ArchRules(
    model_name="LTX-2",
    frame_step=8,
    size_multiple=32,
    min_sample_steps=2,
    default_fps=24.0,
    default_size=64,
    default_num_frames=9,
)
