"""Build a tiny LTX-2 from the real diffusers and transformers classes.

The tiny model has random weights but the published architecture's shape:
every component is the class a real checkpoint uses, saved in diffusers
layout with a model_index.json, and loaded back through the same loader
(`LTX2Model.load_model`) as the published checkpoint. It is what the tiny
examples and the tests run on, on a CPU, in seconds.

Compression (spatial 8x, temporal 8x on the video VAE) keeps the frame
rule of the real model: a clip has 8k+1 frames.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .versions import (
    TRANSFORMER_FLAGS,
    build_gemma4_text_encoder,
    build_vocoder,
    check_version,
    connector_flags,
    video_vae_layout,
)

TINY_NAME = "tiny-ltx2"
# `name_or_path` value -> LTX-2 version of the tiny model it builds.
TINY_NAMES = {TINY_NAME: "2.0", "tiny-ltx2.3": "2.3", "tiny-ltx2.5": "2.5"}
TINY_SEED = 0
# Bump when the architecture below changes so cached folders are rebuilt.
TINY_VERSION = 3  # 3: the 2.5 transformer keeps the prompt AdaLN

TEXT_HIDDEN = 32
TEXT_LAYERS = 2
MAX_SEQUENCE_LENGTH = 128
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def tiny_name(version: str = "2.0") -> str:
    """The `name_or_path` that builds the tiny model of `version`."""
    return next(name for name, tiny_version in TINY_NAMES.items() if tiny_version == check_version(version))


def default_cache_dir(version: str = "2.0") -> Path:
    """Where `name_or_path: tiny-ltx2` (or tiny-ltx2.3, tiny-ltx2.5) is built; LTX2_TRACE_CACHE overrides the root."""
    root = os.environ.get("LTX2_TRACE_CACHE") or Path.home() / ".cache" / "ltx2-trace"
    return Path(root) / f"{tiny_name(version)}-v{TINY_VERSION}"


def build_tokenizer():
    """A byte-level BPE tokenizer with no merges: every UTF-8 byte is a token.

    It needs no download and keeps what Gemma's tokenizer does for the
    pipeline: left padding, a pad token, an eos token, truncation.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for char in alphabet:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=MAX_SEQUENCE_LENGTH,
    )
    return tokenizer


def build_text_encoder(vocab_size: int, version: str = "2.0"):
    """Gemma 3 (the class LTX-2.0/2.3 use) at hidden size 32 with a tiny vision tower; Gemma 4 for 2.5."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    if version == "2.5":
        return build_gemma4_text_encoder(vocab_size, TEXT_HIDDEN, TEXT_LAYERS)

    config = Gemma3Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 256,
            "sliding_window": 128,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": 2,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        mm_tokens_per_image=4,
        image_token_index=vocab_size - 1,
        boi_token_index=vocab_size - 2,
        eoi_token_index=vocab_size - 3,
    )
    return Gemma3ForConditionalGeneration(config)


def build_transformer(seed: int, version: str = "2.0"):
    """The tiny LTX2VideoTransformer3DModel: 2 blocks, video 2 heads x 8, audio 2 heads x 4, random weights,
    with `version`'s flags."""
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(seed)
    return LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        vae_scale_factors=(8, 8, 8),
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        caption_channels=TEXT_HIDDEN,
        rope_double_precision=False,
        rope_type="split",
        **TRANSFORMER_FLAGS[check_version(version)],
    )


def build_components(seed: int = TINY_SEED, version: str = "2.0") -> dict:
    """Every LTX2Pipeline component of `version`, deterministic from `seed`."""
    import torch
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    check_version(version)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = build_text_encoder(vocab_size=len(tokenizer) + 4, version=version)

    transformer = build_transformer(seed + 1, version)

    torch.manual_seed(seed + 2)
    connector_widths = {
        "video_connector_num_attention_heads": 4,
        "video_connector_attention_head_dim": 8,
        "audio_connector_num_attention_heads": 4,
        "audio_connector_attention_head_dim": 8,
    }
    connector_widths.update(
        connector_flags(version, video_dim=_inner_dim(transformer, ""), audio_dim=_inner_dim(transformer, "audio_"))
    )
    connectors = LTX2TextConnectors(
        caption_channels=TEXT_HIDDEN,
        text_proj_in_factor=TEXT_LAYERS + 1,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=MAX_SEQUENCE_LENGTH,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
        **connector_widths,
    )

    torch.manual_seed(seed + 3)
    # The published VAE's block layout (4 down blocks; 3 up blocks in 2.0, 4 in 2.3+), 8 channels wide:
    # spatial and temporal compression 8x, and the same single-file key names.
    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, True),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        spatial_compression_ratio=8,
        temporal_compression_ratio=8,
        **video_vae_layout(version),
    )

    torch.manual_seed(seed + 4)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1, 1, 1),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=1,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=16,
    )

    torch.manual_seed(seed + 5)
    vocoder = build_vocoder(version, mel_channels=audio_vae.config.output_channels * audio_vae.config.mel_bins)

    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "audio_vae": audio_vae,
        "scheduler": scheduler,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "connectors": connectors,
        "vocoder": vocoder,
    }


def _inner_dim(transformer, prefix: str) -> int:
    config = transformer.config
    return config[f"{prefix}num_attention_heads"] * config[f"{prefix}attention_head_dim"]


def save_tiny_ltx2(folder: str | Path, seed: int = TINY_SEED, version: str = "2.0") -> Path:
    """Build the tiny model of `version` and save it in diffusers layout (atomically)."""
    from diffusers import LTX2Pipeline

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        pipeline = LTX2Pipeline(**build_components(seed, version))
        pipeline.save_pretrained(staging, safe_serialization=True)
        marker = {"version": TINY_VERSION, "seed": seed, "ltx2_version": version}
        (staging / "tiny_ltx2.json").write_text(json.dumps(marker))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure_tiny_ltx2(cache_dir: str | Path | None = None, version: str = "2.0") -> Path:
    """The tiny model's folder for `version`, built on first use (`cache_dir` is the folder itself)."""
    folder = Path(cache_dir) if cache_dir else default_cache_dir(version)
    marker = folder / "tiny_ltx2.json"
    if marker.is_file():
        built = json.loads(marker.read_text())
        if built.get("version") == TINY_VERSION and built.get("ltx2_version", "2.0") == version:
            return folder
    return save_tiny_ltx2(folder, version=version)
