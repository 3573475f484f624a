"""A diffusers repo on the Hugging Face Hub as one local folder: its cached snapshot, fetched once when it lacks files.

    folder = local_snapshot("Lightricks/LTX-2", ("transformer", "vae"))   # the cache only; None when incomplete
    folder = fetch_snapshot("Lightricks/LTX-2", ("transformer", "vae"))   # downloads what the cache lacks

Why not hand the hub id to each `from_pretrained`: every component's loader then asks the hub about
every file it might read (optional tokenizer files included), and without a network each question is
retried five times with backoff. A 2-step run of a fully cached repo took 4 min 49 s on a machine
without network, almost all of it waiting. Resolved here once, the run reads a folder: no request to
the hub when the cache holds every file, one download of exactly the files the run reads when it does
not, and streamed loading works for hub ids as for any folder.

Only `model_index.json` and the folders of the components asked for are read or fetched (LTX-2's repos
also hold single-file checkpoints of tens of GB that a diffusers load never reads).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from toolkit.errors import ModelLoadError
from toolkit.logging import get_logger

INDEX_FILE = "model_index.json"
WEIGHT_FILES = ("*.safetensors", "*.bin")


def local_snapshot(repo_id: str, components: Sequence[str]) -> Path | None:
    """The cached snapshot of `repo_id` when it holds model_index.json and every file of `components` (those the
    index lists) that the run reads; None otherwise. Never contacts the hub."""
    from huggingface_hub import snapshot_download

    try:
        index = cached_file(repo_id, INDEX_FILE)
        if index is None:
            return None
        patterns = file_patterns(_read_index(Path(index), repo_id), components)
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except (OSError, ValueError) as error:  # not cached, an incomplete snapshot, an id the hub would refuse
        get_logger(__name__).debug("%s is not complete in the local Hugging Face cache: %s", repo_id, error)
        return None
    return folder if not missing_files(folder, patterns) else None


def fetch_snapshot(repo_id: str, components: Sequence[str]) -> Path:
    """`local_snapshot`, else the files it lacks downloaded into the Hugging Face cache (one `snapshot_download`
    of model_index.json and the folders of `components`); ModelLoadError with the command that fetches them
    when the hub cannot be reached (or HF_HUB_OFFLINE is set), or when the snapshot still lacks some."""
    folder = local_snapshot(repo_id, components)
    if folder is not None:
        get_logger(__name__).info(
            "Loading %s from the local Hugging Face cache (%s): nothing is asked of the hub", repo_id, folder
        )
        return folder
    from huggingface_hub import snapshot_download

    # One request for the listing, then the files: components the repo lacks match nothing. (Asking for
    # model_index.json first would cost a second request, and without network a second round of retries.)
    patterns = _patterns(components)
    try:
        get_logger(__name__).info("Downloading %s (%s) into the Hugging Face cache", repo_id, ", ".join(patterns))
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as error:  # noqa: BLE001 - offline, gated, unknown id, disk full: the hub's errors vary
        raise ModelLoadError(
            f"hub id {repo_id}: its files are not all in the local Hugging Face cache and could not be downloaded "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Download them once "
            f"with\n  {download_command(repo_id, patterns)}\nor point model.name_or_path at a downloaded diffusers "
            "folder; gated repos need `hf auth login` first"
        ) from error
    if (folder / INDEX_FILE).is_file():
        patterns = file_patterns(_read_index(folder / INDEX_FILE, repo_id), components)
    missing = missing_files(folder, patterns)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelLoadError(
            f"hub id {repo_id}: its snapshot in the Hugging Face cache ({folder}) lacks "
            f"{', '.join(missing[:3])}{more}, and the hub did not supply it (no network, HF_HUB_OFFLINE set, or the "
            f"repo has no such files). Download it with\n  {download_command(repo_id, patterns)}"
        )
    return folder


def file_patterns(index: dict, components: Sequence[str]) -> list[str]:
    """What a load of `components` reads from a diffusers repo: model_index.json and the folder of each component
    the index lists (a component it lists as null, or not at all, has no folder)."""
    return _patterns([name for name in components if isinstance(index.get(name), (list, tuple)) and index[name][0]])


def _patterns(components: Sequence[str]) -> list[str]:
    return [INDEX_FILE, *(f"{name}/*" for name in components)]


def cached_file(repo_id: str, filename: str) -> str | None:
    """`filename` of `repo_id`'s main branch in the local Hugging Face cache, or None; the cache alone
    (`hf_hub_download(local_files_only=True)` builds request headers, for which huggingface_hub may ask the hub)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename)
    return path if isinstance(path, str) else None


def missing_files(folder: Path, patterns: Sequence[str]) -> list[str]:
    """The files `patterns` name that `folder` lacks: model_index.json, a component folder, the weights of a
    model's folder (its config.json without a weight file), or a shard its `*.safetensors.index.json` lists:
    what an interrupted download leaves out. (huggingface_hub checks a snapshot against the repo's listing
    when it has one; files fetched one by one, as `from_pretrained` does, leave no listing.)"""
    missing = []
    for pattern in patterns:
        path = folder / pattern.removesuffix("/*")
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            missing.append(pattern.removesuffix("/*"))
            continue
        if not path.is_dir():
            continue
        indexes = sorted(path.glob("*.index.json"))
        weights = [file for weight_glob in WEIGHT_FILES for file in path.glob(weight_glob) if file.is_file()]
        if (path / "config.json").is_file() and not indexes and not weights:
            missing.append(f"{path.name}/ weights (no {' or '.join(WEIGHT_FILES)})")
        for index in indexes:
            shards = dict.fromkeys(json.loads(index.read_text()).get("weight_map", {}).values())
            missing += [f"{path.name}/{shard}" for shard in shards if not (path / shard).is_file()]
    return missing


def download_command(repo_id: str, patterns: Sequence[str]) -> str:
    """The `hf download` command that fetches `patterns` of `repo_id` into the Hugging Face cache."""
    includes = " ".join(f"--include {shlex.quote(pattern)}" for pattern in patterns)
    return f"hf download {shlex.quote(repo_id)} {includes}"


def _read_index(path: Path, repo_id: str) -> dict:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"hub id {repo_id}: {path} cannot be read as JSON ({error}); download it again") from error
    if not isinstance(index, dict):
        raise ModelLoadError(f"hub id {repo_id}: {path} is not a JSON object; is {repo_id} a diffusers repo?")
    return index
