"""Turning the dataset into what the trainer steps over: encoded examples, in a seeded order.

Every clip is encoded once (video latents, audio latents, caption
embeddings), through the disk caches when they are on, before the first
step; the text encoder can then be unloaded. Which examples a step sees
and the noise they get are functions of (seed, step), so a resumed run
sees exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from toolkit.data import LatentCache, MediaDataset, PlannedItem, TextEmbeddingCache
from toolkit.distributed import is_main_process
from toolkit.errors import DataError
from toolkit.logging import get_logger
from toolkit.models.arch_rules import ArchRules
from toolkit.models.model_inputs import PromptEmbeds
from toolkit.monitoring.latents import collect_encode_reports
from toolkit.trace import get_tracer

from .clip_encoding import ClipEncoder

LATENT_CACHE_DIR = "latent_cache"
TEXT_CACHE_DIR = "text_embedding_cache"


@dataclass
class TrainingExample:
    """One clip, encoded: what the transformer trains on."""

    path: Path
    caption: str
    video_latents: torch.Tensor  # (C, F, H, W)
    audio_latents: torch.Tensor  # (C, L, M)
    prompt: PromptEmbeds  # its caption encoded (batch dim 1, on the CPU)
    fps: float
    audio_is_silence: bool
    pixel_shape: tuple[int, int, int]  # (frames, height, width) of the clip as trained
    caption_dropout_rate: float = 0.0  # its dataset's: the chance a step trains this clip on the empty caption
    train_audio: bool = True  # its dataset's `audio`: False trains the video only (no audio loss)
    is_reg: bool = False  # from a regularisation dataset (`is_reg`)
    is_val: bool = False  # from a held-out dataset (`is_val`): evaluated, never trained on
    network_weight: float = 1.0  # LoRA strength while training on it (the dataset's `network_weight`)
    flip_x: bool = False
    flip_y: bool = False

    @property
    def shape_key(self) -> tuple:
        return (tuple(self.video_latents.shape), tuple(self.audio_latents.shape))


@dataclass
class EncodedData:
    examples: list[TrainingExample]
    skipped: list[tuple[Path, str]]
    latent_cache_hits: int = 0
    text_cache_hits: int = 0
    held_out: list[TrainingExample] = field(default_factory=list)  # evaluated, never trained on (held_out.py)


def open_datasets(dataset_configs, audio_sample_rate: int, seed: int, rules: ArchRules) -> list[MediaDataset]:
    """One MediaDataset per `datasets:` entry, cut by the model's `rules`; an entry with `audio: false` reads no
    audio at all."""
    return [
        MediaDataset(
            folder=dataset.folder_path,
            caption_ext=dataset.caption_ext,
            num_frames=dataset.num_frames,
            resolutions=dataset.resolution,
            fps=dataset.fps,
            caption_dropout_rate=0.0,  # dropout happens per step, on the embeddings (see SDTrainer)
            default_caption=dataset.default_caption,
            on_corrupt=dataset.on_corrupt,
            missing_audio=dataset.missing_audio,
            audio_sample_rate=audio_sample_rate if dataset.audio else None,
            seed=seed,
            num_repeats=dataset.num_repeats,
            flip_x=dataset.flip_x,
            flip_y=dataset.flip_y,
            shrink_video_to_frames=dataset.shrink_video_to_frames,
            auto_frame_count=dataset.auto_frame_count,
            shuffle_tokens=dataset.shuffle_tokens,
            rules=rules,
        )
        for dataset in dataset_configs
    ]


def encode_datasets(
    model, datasets: list[MediaDataset], dataset_configs, run_folder: Path, caption_transform,
    held_out_files: Collection[Path] = frozenset(),
) -> EncodedData:
    """Encode every item of every dataset (through the caches where configured) except a held-out file's
    flipped copies (see `held_out_copies`).

    Each distinct item (a file, or its flipped copy) is decoded and encoded once;
    its `num_repeats` repeats share those latents and differ only in the caption
    when `shuffle_tokens` is on. `held_out_files`: the files `train.validation_split`
    holds out (resolved paths, `toolkit.data.held_out.split_off_files`).
    """
    examples: list[TrainingExample] = []
    skipped: list[tuple[Path, str]] = []
    latent_hits = text_hits = 0
    unused = [held_out_copies(d, config, held_out_files) for d, config in zip(datasets, dataset_configs)]
    total = sum(d.variant_count - len(copies) for d, copies in zip(datasets, unused))
    with (
        get_tracer().span("encode_dataset", clips=total, datasets=len(datasets)) as span,
        collect_encode_reports() as caching_report,
    ):
        progress = tqdm(total=total, desc="Encoding clips", unit="clip", leave=False, disable=not is_main_process())
        silence = SilenceLatents(model)
        for dataset, dataset_config, copies in zip(datasets, dataset_configs, unused):
            if not dataset_config.audio:
                get_tracer().event("dataset_audio_off", folder=dataset_config.folder_path, clips=len(dataset))
            latent_cache = LatentCache(run_folder / LATENT_CACHE_DIR) if dataset_config.cache_latents_to_disk else None
            text_cache = TextEmbeddingCache(run_folder / TEXT_CACHE_DIR) if dataset_config.cache_text_embeddings else None
            clips = ClipEncoder(model, dataset, latent_cache, silence.for_clip, unused=copies)
            for variant in range(dataset.variant_count):
                if variant in copies:
                    continue
                planned = dataset.planned(variant)
                encoded = clips.encoded(variant)
                prompts: dict[str, PromptEmbeds] = {}
                for caption in _captions(dataset, variant, _held_out(planned, dataset_config, held_out_files), caption_transform):
                    if caption not in prompts:
                        prompts[caption] = encode_prompt(model, caption, text_cache)
                    examples.append(_example(planned, caption, encoded, prompts[caption], dataset_config))
                progress.update(1)
            skipped.extend(dataset.skipped)
            latent_hits += latent_cache.hits if latent_cache else 0
            text_hits += text_cache.hits if text_cache else 0
        progress.close()
        caching_report.publish(get_logger(__name__), get_tracer())
        span.set(examples=len(examples), skipped=len(skipped), latent_cache_hits=latent_hits, text_cache_hits=text_hits)
    if not examples:
        raise DataError(
            "no training clips could be used: "
            + (f"{len(skipped)} skipped ({skipped[0][0]}: {skipped[0][1]}, ...)" if skipped else "the dataset folders are empty")
        )
    return EncodedData(examples, skipped, latent_hits, text_hits)


def held_out_copies(dataset: MediaDataset, dataset_config, held_out_files: Collection[Path]) -> set[int]:
    """The items of `dataset` that are flipped copies of a held-out file (of an `is_val` dataset, or one of
    `held_out_files`).

    A held-out file is evaluated once, as it is, and none of its copies is trained (held_out.py), so these
    are never decoded, encoded or cached; its plain item is encoded as every training item is.
    """
    return {
        variant
        for variant in range(dataset.variant_count)
        if (planned := dataset.planned(variant)).flips and _held_out(planned, dataset_config, held_out_files)
    }


def _held_out(planned: PlannedItem, dataset_config, held_out_files: Collection[Path]) -> bool:
    return dataset_config.is_val or planned.path.resolve() in held_out_files


def _captions(dataset: MediaDataset, variant: int, held_out: bool, caption_transform) -> list[str]:
    """The caption of each example item `variant` gives: one per repeat for training (shuffled when
    `shuffle_tokens`), one as the caption file has it for a held-out item (evaluated once, as written)."""
    if held_out:
        return [caption_transform(dataset.caption_as_written(variant))]
    return [
        caption_transform(dataset.caption_at(variant + repeat * dataset.variant_count))
        for repeat in range(dataset.num_repeats)
    ]


class SilenceLatents:
    """The audio stream of video-only clips (`audio: false`): the latents of silence as long as the clip.

    LTX-2's transformer always predicts both streams, so a video-only clip still needs audio latents of
    its length; it gets silence, encoded once per clip length (not once per clip), and no audio loss.
    The clip's own audio is never decoded or encoded.
    """

    def __init__(self, model):
        self.model = model
        self._by_samples: dict[int, torch.Tensor] = {}

    def for_clip(self, num_frames: int, fps: float) -> torch.Tensor:
        rate = self.model.audio_sample_rate
        samples = int(round(num_frames / fps * rate))
        if samples not in self._by_samples:
            with get_tracer().span("silence_latents", samples=samples, sample_rate=rate, reason="audio: false"):
                silent = torch.zeros(1, 2, samples)
                self._by_samples[samples] = self.model.encode_audio(silent, rate, [True]).latents.cpu()
        return self._by_samples[samples]


def _example(planned: PlannedItem, caption: str, encoded: dict[str, torch.Tensor], prompt, dataset_config) -> TrainingExample:
    return TrainingExample(
        path=planned.path,
        caption=caption,
        video_latents=encoded["video_latents"][0],
        audio_latents=encoded["audio_latents"][0],
        prompt=prompt,
        fps=float(encoded["clip_fps"]),
        audio_is_silence=bool(encoded["audio_is_silence"]),
        caption_dropout_rate=dataset_config.caption_dropout_rate,
        train_audio=dataset_config.audio,
        is_reg=dataset_config.is_reg,
        is_val=dataset_config.is_val,
        network_weight=dataset_config.network_weight,
        flip_x=planned.flip_x,
        flip_y=planned.flip_y,
        pixel_shape=tuple(planned.video_shape[1:]),
    )


def text_encoder_may_wait(config) -> bool:
    """Whether every prompt a run encodes before its first step can come from the text-embedding cache: each
    dataset caches its captions (the empty prompt then goes through the cache too), no sample prompts (their
    text states for the pipeline are never cached) and no preservation prompts. The model may then defer
    reading its text encoder to the first prompt the cache does not hold: never, on a rerun or a resume."""
    sampling = not config.train.disable_sampling and bool(config.sample.prompts)
    cached = all(dataset.cache_text_embeddings for dataset in config.datasets)
    return cached and not sampling and not config.train.diff_output_preservation


def empty_prompt(model, dataset_configs, run_folder: Path) -> PromptEmbeds:
    """The embeddings of "" (what caption dropout trains on), through the text-embedding cache when every dataset
    caches its captions."""
    cached = all(dataset.cache_text_embeddings for dataset in dataset_configs)
    return encode_prompt(model, "", TextEmbeddingCache(run_folder / TEXT_CACHE_DIR) if cached else None)


def encode_prompt(model, caption: str, cache: TextEmbeddingCache | None) -> PromptEmbeds:
    """`caption`'s embeddings (on the CPU), through `cache` when it is on."""

    def compute() -> PromptEmbeds:
        return model.get_prompt_embeds([caption]).to("cpu")

    if cache is None:
        return compute()
    settings = {"encoder": model.text_encoder_identity(), "max_length": model.max_sequence_length}
    return PromptEmbeds.from_tensors(cache.get_or_compute(caption, settings, lambda: compute().as_tensors()))


def audio_loss_mask(examples: list[TrainingExample], device: torch.device) -> torch.Tensor | None:
    """(B, 1, 1, 1): 1 for the clips whose audio trains, 0 for video-only ones (`audio: false`); None if all train."""
    trained = [example.train_audio for example in examples]
    if all(trained):
        return None
    return torch.tensor(trained, dtype=torch.float32, device=device).view(-1, 1, 1, 1)


class ExampleOrder:
    """Which example each position of the run trains on.

    Step s trains on positions s * per_step ... (s + 1) * per_step - 1; a position
    also seeds its clip's noise. Examples are visited in seeded epochs: position p
    of a pool of n is perm(epoch)[p % n] with epoch = p // n. Regularisation
    examples (datasets with `is_reg`) form a second pool, and steps alternate as
    in ai-toolkit: even steps draw from the regularisation pool, odd steps from
    the training examples, each pool in its own epochs.
    """

    def __init__(self, is_reg: list[bool], seed: int, per_step: int):
        self.training = [index for index, reg in enumerate(is_reg) if not reg]
        self.regularisation = [index for index, reg in enumerate(is_reg) if reg]
        if not self.training:
            raise DataError(
                "every training clip comes from a dataset with is_reg: true; regularisation clips only keep "
                "the LoRA in check, so add a dataset without is_reg to train on"
            )
        self.seed = seed
        self.per_step = per_step
        self.count = len(self.training)
        self._permutations: dict[tuple[bool, int], list[int]] = {}

    def positions(self, step: int) -> list[int]:
        return list(range(step * self.per_step, (step + 1) * self.per_step))

    def is_regularisation_step(self, step: int) -> bool:
        return bool(self.regularisation) and step % 2 == 0

    def example_at(self, position: int) -> int:
        regularisation, pool_position = self._pool_position(position)
        pool = self.regularisation if regularisation else self.training
        epoch = pool_position // len(pool)
        return pool[self._permutation(regularisation, epoch, len(pool))[pool_position % len(pool)]]

    def _pool_position(self, position: int) -> tuple[bool, int]:
        if not self.regularisation:
            return False, position
        step, offset = divmod(position, self.per_step)
        return self.is_regularisation_step(step), (step // 2) * self.per_step + offset

    def _permutation(self, regularisation: bool, epoch: int, size: int) -> list[int]:
        key = (regularisation, epoch)
        if key not in self._permutations:
            salt = 50_000_017 if regularisation else 0
            generator = torch.Generator().manual_seed(self.seed * 100_003 + salt + epoch)
            kept = {k: v for k, v in self._permutations.items() if k[0] != regularisation}
            self._permutations = {**kept, key: torch.randperm(size, generator=generator).tolist()}
        return self._permutations[key]
