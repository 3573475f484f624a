"""Disk caches for encoded latents (per media file) and text embeddings (per caption).

Encoding a clip through the VAEs, or a caption through a 12B text encoder,
costs far more than reading the result back, so each result is stored once as
a `.safetensors` file whose name carries a key. The key covers everything that
changes the result: for latents the file's identity (path, size, mtime, a hash
of its first and last megabyte) and the settings (frames, bucket, fps, sample
rate, encoder identity, which frames and flips); for embeddings the caption
and the encoder identity.
Change any of them and the key changes, so the entry is recomputed; a latent
entry superseded this way is deleted. Writes go to a temporary file that is
renamed into place, so a crash never leaves a half-written entry behind.

Each entry records what it was computed from (source path and identity,
variant, settings, key; for embeddings the caption), and an entry is used only
when that record matches the lookup: an entry copied or renamed from another
clip or run is encoded again, with a warning that says what differed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from toolkit.atomic_write import atomic_write
from toolkit.errors import DataError
from toolkit.safetensors_files import write_safetensors
from toolkit.trace import get_tracer

logger = logging.getLogger(__name__)

ComputeFn = Callable[[], Mapping[str, torch.Tensor]]

# Hashing the ends of the file catches re-encoded or re-trimmed clips whose size
# and mtime were preserved (copies with `cp -p`, rsync -t) without reading it all.
_HASHED_BYTES = 1 << 20
_KEY_CHARS_IN_NAME = 16
_FORMAT = "ltx2-trace cache v1"


class _SafetensorsCache:
    """Shared storage: one entry a file, atomic writes, hit and miss counters."""

    kind = "cache"
    subject = "lookup"  # what an entry is computed for, in messages

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(
                f"cannot create the {self.kind} folder {self.folder} ({error}); pick a writable cache folder"
            ) from error
        self.hits = 0
        self.misses = 0

    def _load_or_compute(
        self, entry: Path, metadata: dict[str, str], compute_fn: ComputeFn, device: torch.device | str
    ) -> dict[str, torch.Tensor]:
        lookups = self.hits + self.misses
        if entry.is_file():
            cached = self._load(entry, metadata, device)
            if cached is not None:
                self.hits += 1
                self._trace(lookups, "hit", entry, metadata)
                return cached
        self.misses += 1
        tensors = _checked_result(compute_fn(), entry)
        self._store(entry, tensors, metadata)
        self._trace(lookups, "miss", entry, metadata)
        return {name: tensor.to(device) for name, tensor in tensors.items()}

    def _load(self, entry: Path, expected: dict[str, str], device: torch.device | str) -> dict[str, torch.Tensor] | None:
        """The entry's tensors; None when it records another source or settings than `expected` (after a
        warning; the new result replaces it) or is unreadable (after a warning, with the file deleted)."""
        try:
            with safe_open(str(entry), framework="pt", device=str(device)) as handle:
                differences = _differences(handle.metadata() or {}, expected)
                if differences:
                    logger.warning(
                        "%s entry %s was not computed for this %s (%s); computing it again",
                        self.kind, entry, self.subject, "; ".join(differences),
                    )
                    return None
                return {name: handle.get_tensor(name) for name in handle.keys()}
        except (SafetensorError, OSError) as error:
            logger.warning("%s entry %s is unreadable (%s); deleting it and computing again", self.kind, entry, error)
            entry.unlink(missing_ok=True)
            return None

    def _store(self, entry: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        try:
            # Not flushed to disk (no fsync per entry, which cost more than the encode of a small clip): an entry
            # a power cut leaves unreadable is found by `_load`, deleted and computed again.
            with atomic_write(entry, durable=False) as temporary:
                write_safetensors(tensors, temporary, metadata={"format": _FORMAT, **metadata})
        except (OSError, SafetensorError) as error:
            raise DataError(
                f"cannot write {self.kind} entry {entry} ({error}); "
                f"check free disk space and permissions of {self.folder}"
            ) from error

    def _trace(self, lookups: int, outcome: str, entry: Path, metadata: dict[str, str]) -> None:
        tracer = get_tracer()
        if tracer.should_trace_step(lookups):
            name = self.kind.replace(" ", "_")
            tracer.event(name, outcome=outcome, entry=entry.name, hits=self.hits, misses=self.misses, **metadata)


class LatentCache(_SafetensorsCache):
    """Latents of media files, one entry per file and settings: `<stem>_<key16>.safetensors`.

        cache = LatentCache(output / "latent_cache")
        latents = cache.get_or_compute(clip_path, {"num_frames": 17, "bucket": [64, 64], "fps": 24.0,
                                                   "sample_rate": 16000, "encoder": vae_identity}, encode)
    """

    kind = "latent cache"
    subject = "clip"

    def __init__(self, folder: str | Path) -> None:
        super().__init__(folder)
        # The hash of each file's ends, by path and stat: the batching clip encoder looks an entry up before it
        # computes it, and a dataset's flipped copies share the file. The file is still stat-ed every time (a write
        # moves its ctime, which no copy tool sets back, though two writes within one clock tick may share one);
        # a cache serves one encoding pass, and the next run hashes every file again.
        self._digests: dict[tuple[str, int, int, int, int], str] = {}

    def key_for(self, path: str | Path, settings: Mapping[str, Any]) -> str:
        """sha256 hex of the file's identity and the settings."""
        path = Path(path).resolve()
        return _key(path, self._identity(path), settings)

    def _identity(self, path: Path) -> dict[str, Any]:
        """What tells this file's content from another's without reading it all: size, mtime, a hash of its ends."""
        try:
            stat = path.stat()
        except OSError as error:
            raise DataError(f"{path}: cannot read the file to cache its latents ({error})") from error
        known = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if known not in self._digests:
            self._digests[known] = _ends_digest(path, stat.st_size)
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "content": self._digests[known]}

    def entry_path(self, path: str | Path, settings: Mapping[str, Any]) -> Path:
        """Where the entry for (`path`, `settings`) lives (whether or not it exists yet)."""
        source = Path(path).resolve()
        return self._entry_for(source, self.key_for(source, settings))

    def get_or_compute(
        self,
        path: str | Path,
        settings: Mapping[str, Any],
        compute_fn: ComputeFn,
        device: torch.device | str = "cpu",
        variant: str = "",
    ) -> dict[str, torch.Tensor]:
        """The cached tensors for (`path`, `settings`), calling `compute_fn()` only on a miss.

        `variant` names one of several encodings of the same file that live side by
        side (say its mirrored copy, "flip_x"); a new entry supersedes only the
        entries of the same file and variant.
        """
        source = Path(path).resolve()
        identity = self._identity(source)
        key = _key(source, identity, settings)
        entry = self._entry_for(source, key)
        metadata = {
            "source": str(source),
            "identity": json.dumps(identity, sort_keys=True),
            "variant": variant,
            "key": key,
            "settings": settings_json(settings, where=str(source)),
        }
        was_cached = entry.is_file()
        tensors = self._load_or_compute(entry, metadata, compute_fn, device)
        if not was_cached:
            self._remove_stale(source, variant, entry)
        return tensors

    def _entry_for(self, source: Path, key: str) -> Path:
        return self.folder / f"{source.stem}_{key[:_KEY_CHARS_IN_NAME]}.safetensors"

    def _remove_stale(self, source: Path, variant: str, current: Path) -> None:
        """Delete older entries of `source` and `variant` (same stem, same recorded source and variant, other key)."""
        for candidate in self.folder.glob(f"{_glob_escape(source.stem)}_*.safetensors"):
            if candidate == current or len(candidate.stem) != len(source.stem) + 1 + _KEY_CHARS_IN_NAME:
                continue
            recorded = _recorded_metadata(candidate)
            if recorded is not None and recorded.get("source") == str(source) and recorded.get("variant", "") == variant:
                candidate.unlink(missing_ok=True)


class TextEmbeddingCache(_SafetensorsCache):
    """Text-encoder outputs per caption: `caption_<key16>.safetensors`, keyed by the
    caption and the settings (the encoder identity, and anything else that changes
    the embeddings, like the maximum sequence length)."""

    kind = "text embedding cache"
    subject = "caption"

    def key_for(self, caption: str, settings: Mapping[str, Any]) -> str:
        identity = {"caption": caption, "settings": settings_json(settings, where="text embedding cache settings")}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def entry_path(self, caption: str, settings: Mapping[str, Any]) -> Path:
        """Where the entry for (`caption`, `settings`) lives (whether or not it exists yet)."""
        return self.folder / f"caption_{self.key_for(caption, settings)[:_KEY_CHARS_IN_NAME]}.safetensors"

    def get_or_compute(
        self, caption: str, settings: Mapping[str, Any], compute_fn: ComputeFn, device: torch.device | str = "cpu"
    ) -> dict[str, torch.Tensor]:
        """The cached embeddings of `caption`, calling `compute_fn()` only on a miss."""
        key = self.key_for(caption, settings)
        entry = self.entry_path(caption, settings)
        metadata = {"caption": caption, "key": key, "settings": settings_json(settings, where="text embedding cache")}
        return self._load_or_compute(entry, metadata, compute_fn, device)


def settings_json(settings: Mapping[str, Any], where: str) -> str:
    """Canonical JSON of a settings dict (sorted keys; tuples and paths as lists and strings)."""

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, Mapping):
            return {str(name): plain(item) for name, item in value.items()}
        raise DataError(
            f"{where}: setting value {value!r} ({type(value).__name__}) cannot be part of a cache key; "
            f"pass strings, numbers, booleans, lists or dicts"
        )

    return json.dumps(plain(dict(settings)), sort_keys=True)


def _checked_result(result: Any, entry: Path) -> dict[str, torch.Tensor]:
    if not isinstance(result, Mapping) or not result:
        raise DataError(
            f"cache compute function for {entry.name} returned {type(result).__name__}; "
            f"it must return a non-empty dict of tensors"
        )
    bad = [name for name, value in result.items() if not isinstance(name, str) or not isinstance(value, torch.Tensor)]
    if bad:
        raise DataError(
            f"cache compute function for {entry.name} returned non-tensor values for {bad}; return tensors only"
        )
    # Clones: safetensors refuses tensors that share storage (views of one latent).
    return {
        name: tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format) for name, tensor in result.items()
    }


def _key(path: Path, identity: dict[str, Any], settings: Mapping[str, Any]) -> str:
    keyed = {
        "path": str(path),
        **identity,
        "settings": settings_json(settings, where=f"latent cache settings for {path}"),
    }
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def _differences(recorded: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """'name: recorded X, not Y' for each expected field the entry records otherwise (or not at all)."""
    return [
        f"{name}: recorded {_short(recorded.get(name, '(nothing)'))}, not {_short(value)}"
        for name, value in expected.items()
        if recorded.get(name) != value
    ]


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ends_digest(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            digest.update(file.read(_HASHED_BYTES))
            if size > 2 * _HASHED_BYTES:
                file.seek(size - _HASHED_BYTES)
            digest.update(file.read(_HASHED_BYTES))
    except OSError as error:
        raise DataError(f"{path}: cannot read the file to cache its latents ({error})") from error
    return digest.hexdigest()


def _recorded_metadata(entry: Path) -> dict[str, str] | None:
    try:
        with safe_open(str(entry), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        logger.warning("latent cache entry %s is unreadable (%s); leaving it in place", entry, error)
        return None


def _glob_escape(text: str) -> str:
    return "".join(f"[{char}]" if char in "*?[]" else char for char in text)
