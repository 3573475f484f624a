"""Which of LTX-2's attention modules the inspection probes, under the names its blocks report.

Every transformer block has four cross-attentions between streams: the video and the
audio stream each attend to the prompt (`attn2`, `audio_attn2`), and to each other
(`audio_to_video_attn`: video queries over audio keys; `video_to_audio_attn`: the reverse).
Self-attention (`attn1`, `audio_attn1`) is left out: it says nothing about how the streams meet.
"""

from __future__ import annotations

from torch import nn

# module name in a block -> what the inspection calls it: <keys' stream>_to_<queries' stream>
CROSS_ATTENTION = {
    "attn2": "text_to_video",
    "audio_attn2": "text_to_audio",
    "audio_to_video_attn": "audio_to_video",
    "video_to_audio_attn": "video_to_audio",
}


def cross_attention_modules(transformer: nn.Module) -> dict[str, nn.Module]:
    """{"transformer_blocks.<i>.<stream>_to_<stream>": module} for every block's cross-attentions."""
    modules = {}
    for name, module in transformer.named_modules():
        block, _, attribute = name.rpartition(".")
        if attribute in CROSS_ATTENTION and block:
            modules[f"{block}.{CROSS_ATTENTION[attribute]}"] = module
    return modules
