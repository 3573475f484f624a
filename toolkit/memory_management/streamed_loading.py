"""Streamed loading: fill a model built on the meta device block by block from safetensors files.

    sources = {"blocks.0.linear.weight": TensorSource("model-00001.safetensors", "blocks.0.linear.weight"), ...}
    report = stream_into(model, sources, torch.bfloat16, block_patterns=(r"blocks\\.\\d+",),
                         on_module=lambda loaded: quantize_and_place(loaded.name), label="transformer")

A checkpoint of tens of GB never needs to sit in host memory whole: each
block's tensors are read from the files with plain reads straight into
tensors of their stored dtype (tensor_reader.py), cast only when the load
dtype differs, and set into the empty model (accelerate's
``set_module_tensor_to_device``); as soon as a module holds all its tensors,
``on_module`` quantizes it and moves it where it belongs. A reader thread reads
the next tensors meanwhile, so the disk keeps reading while the loader casts,
quantizes and moves; it holds at most the largest block less its largest
module, so the host peak is still what stays resident plus one block in flight.

A block is the module a ``block_patterns`` regex names (a transformer block,
a decoder layer); tensors outside every block are grouped by the outermost
module that holds no block (``time_embed``, ``embed_tokens``), and a tensor on
a module that holds blocks (``scale_shift_table`` on the root) is a block of
its own. Blocks are read in the model's own order, the tensors of a block in
the order they lie in the files.

Model-agnostic: which files, which key names and which blocks come from the
model's extension.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from toolkit.memory_management.errors import StreamedLoadError
from toolkit.memory_management.tensor_reader import ReadAhead, StoredTensor, stored_tensors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSource:
    """Where one of the model's tensors is stored: the safetensors file and its name in that file."""

    path: str
    key: str


@dataclass(frozen=True)
class LoadedModule:
    """A module that just received all its tensors: its block ("" for the root's own tensors), its name, and the
    bytes of its tensors as stored."""

    block: str
    name: str
    bytes_read: int


@dataclass
class StreamReport:
    """What `stream_into` read: files, bytes (as stored), tensors, blocks and the largest block."""

    files: list[str] = field(default_factory=list)
    bytes_read: int = 0
    tensors: int = 0
    blocks: int = 0
    largest_block: str = ""
    largest_block_bytes: int = 0

    def facts(self) -> dict:
        """The report as plain trace fields."""
        return {
            "files": [Path(path).name for path in self.files],
            "bytes_read": self.bytes_read,
            "tensors": self.tensors,
            "blocks": self.blocks,
            "largest_block": self.largest_block,
            "largest_block_bytes": self.largest_block_bytes,
        }


def safetensors_files(folder: Path) -> list[Path]:
    """A model folder's safetensors weights: the shards its `*.safetensors.index.json` lists, else its one
    `.safetensors` file; [] when it has neither (or several files and no index)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        weight_map = json.loads(indexes[0].read_text())["weight_map"]
        return [folder / shard for shard in dict.fromkeys(weight_map.values())]
    singles = sorted(folder.glob("*.safetensors"))
    return singles if len(singles) == 1 else []


def folder_sources(files: Sequence[Path]) -> dict[str, TensorSource]:
    """{tensor name: TensorSource} of every tensor in `files`, from their headers (no tensor is read)."""
    sources = {}
    for path in files:
        sources.update({key: TensorSource(str(path), key) for key in stored_tensors(path)})
    return sources


def group_into_blocks(keys: Sequence[str], block_patterns: Sequence[str]) -> dict[str, list[str]]:
    """Tensor names grouped by block, in the order the keys come (see the module docstring)."""
    compiled = [re.compile(f"({pattern})\\.") for pattern in block_patterns]
    block_of = {}
    for key in keys:
        match = next((m for pattern in compiled if (m := pattern.match(key))), None)
        block_of[key] = match.group(1) if match else None
    # Every proper prefix of a block name holds blocks: tensors under it are grouped one level deeper.
    holders = {""}
    for name in filter(None, set(block_of.values())):
        parts = name.split(".")
        holders.update(".".join(parts[:depth]) for depth in range(1, len(parts)))
    blocks: dict[str, list[str]] = {}
    for key, block in block_of.items():
        if block is None:
            block = _outermost_free_module(key, holders)
        blocks.setdefault(block, []).append(key)
    return blocks


def _outermost_free_module(key: str, holders: set[str]) -> str:
    parts = key.split(".")[:-1]
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if prefix not in holders:
            return prefix
    return ".".join(parts)


def stream_into(
    module: nn.Module,
    sources: dict[str, TensorSource],
    dtype: torch.dtype | None,
    block_patterns: Sequence[str],
    on_module: Callable[[LoadedModule], None],
    label: str,
) -> StreamReport:
    """Fill `module` (built on the meta device) from `sources`, block by block in the model's order.

    `on_module` is called for each module as soon as it holds all its tensors (to quantize it and move it
    where it belongs) while a reader thread reads the next tensors (tensor_reader.ReadAhead), at most as
    many bytes ahead as keep the host within one block in flight: the largest block less its largest module.
    Within a block, tensors are read in file order. dtype: floating tensors are cast to it (None: as stored).
    Every parameter and persistent buffer of `module` must have a source, and every source a tensor in
    `module`: a mismatch is a StreamedLoadError naming both sides.
    """
    expected = [key for key, _ in _state_items(module)]
    # A tied tensor is read once, under the name the model lists first; its other names may be in the files too.
    aliases = set(module.state_dict(keep_vars=True)) - set(expected)
    sources = {key: source for key, source in sources.items() if key not in aliases}
    _check_names(label, expected, sources)
    report = StreamReport(files=sorted({source.path for source in sources.values()}))
    layouts = {path: stored_tensors(path) for path in report.files}
    stored = {key: layouts[source.path][source.key] for key, source in sources.items()}
    blocks = {
        name: sorted(keys, key=lambda key: (stored[key].path, stored[key].offset))
        for name, keys in group_into_blocks(expected, block_patterns).items()
    }
    order = [stored[key] for keys in blocks.values() for key in keys]
    window = _read_ahead_window(blocks, stored, dtype)
    with ReadAhead(order, window) as reader, _progress(label, report.files, order) as progress:
        for block_name, keys in blocks.items():
            remaining = Counter(_owner(key) for key in keys)
            module_bytes: Counter[str] = Counter()
            for key in keys:
                tensor = stored[key]
                progress.reading(tensor.path)
                _set_tensor(module, key, reader.take(), sources[key], dtype, label)
                reader.done(tensor.nbytes)
                progress.update(tensor.nbytes)
                owner = _owner(key)
                module_bytes[owner] += tensor.nbytes
                remaining[owner] -= 1
                if remaining[owner] == 0:
                    on_module(LoadedModule(block_name, owner, module_bytes[owner]))
            block_bytes = sum(module_bytes.values())
            report.tensors += len(keys)
            report.bytes_read += block_bytes
            report.blocks += 1
            if block_bytes > report.largest_block_bytes:
                report.largest_block, report.largest_block_bytes = block_name, block_bytes
            release_freed_host_memory()
    return report


def _owner(key: str) -> str:
    """The module a tensor belongs to ("" for the root's own)."""
    return key.rpartition(".")[0]


def _read_ahead_window(blocks: dict[str, list[str]], stored: dict[str, StoredTensor], dtype: torch.dtype | None) -> int:
    """Bytes the reader may hold ahead of the loader: the largest block less the largest module, at the load dtype.

    The loader holds at most one module in flight (being quantized or moved), so the host holds no more than
    the largest block in flight, which is what the memory plan counts (plan_loading.py).
    """

    def load_bytes(key: str) -> int:
        tensor = stored[key]
        cast = dtype if dtype is not None and tensor.dtype.is_floating_point else tensor.dtype
        return tensor.numel * cast.itemsize

    largest_block = largest_module = 0
    for keys in blocks.values():
        per_module = Counter()
        for key in keys:
            per_module[_owner(key)] += load_bytes(key)
        largest_block = max(largest_block, sum(per_module.values()))
        largest_module = max(largest_module, *per_module.values(), 0)
    return largest_block - largest_module


def _set_tensor(module: nn.Module, key: str, tensor: torch.Tensor, source: TensorSource, dtype, label: str) -> None:
    """Cast one tensor just read (a copy only when its dtype changes) and set it into `module`."""
    from accelerate.utils import set_module_tensor_to_device

    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    try:
        set_module_tensor_to_device(module, key, "cpu", value=tensor, dtype=tensor.dtype)
    except ValueError as error:  # a shape the config does not describe
        raise StreamedLoadError(
            f"streamed loading of the {label}: {source.key} in {source.path} does not fit {key}: {error}; "
            "the files hold a different model than its config describes"
        ) from error


def release_freed_host_memory() -> None:
    """Hand memory freed by the last block (its full-precision copy, once quantized or moved) back to the system.

    glibc keeps freed heap memory for reuse, and the mix of sizes a block leaves behind (read, cast, quantized)
    is rarely reused: quantizing eight 1024 x 1024 fp32 layers with quanto qint8 (8 MB kept) left 90 MB
    resident without this, 8.5 MB with it. Called after each block here and after each quantized layer by
    `quantize_while_loading`. A no-op where the C library is not glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None


def _state_items(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Parameters and persistent buffers by name, tied ones once (as `state_dict` names them)."""
    seen: set[int] = set()
    for name, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        yield name, tensor


def name_mismatch(expected: Sequence[str], found: Collection[str]) -> str | None:
    """What differs between the tensor names a model expects and those a checkpoint holds, in a few words
    ("2 weights missing (first: ...); 1 not expected (first: ...)"), or None when they are the same names."""
    found_names = set(found)
    missing = [key for key in expected if key not in found_names]
    unexpected = sorted(found_names - set(expected))
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} not expected (first: {', '.join(unexpected[:3])})")
    return "; ".join(parts) or None


def _check_names(label: str, expected: list[str], sources: dict[str, TensorSource]) -> None:
    mismatch = name_mismatch(expected, sources)
    if mismatch is None:
        return
    files = sorted({source.path for source in sources.values()})
    raise StreamedLoadError(
        f"streamed loading of the {label} from {', '.join(files) or 'no files'}: {mismatch}. "
        "The files hold a different model than its config describes; re-download or re-export the checkpoint"
    )


class _Progress:
    """A tqdm bar in bytes (with rate) for one component, its description naming the file being read."""

    def __init__(self, label: str, total: int, first_file: str) -> None:
        from tqdm import tqdm

        self.label, self.file = label, first_file
        self.bar = tqdm(total=total, desc=self._description(), unit="B", unit_scale=True, unit_divisor=1024)

    def _description(self) -> str:
        return f"Loading {self.label} [{Path(self.file).name}]"

    def reading(self, path: str) -> None:
        if path != self.file:
            self.file = path
            self.bar.set_description_str(self._description())

    def update(self, count: int) -> None:
        self.bar.update(count)


@contextlib.contextmanager
def _progress(label: str, files: list[str], order: list[StoredTensor]):
    """The component's progress bar; a log line first names the component, its size and its files."""
    from tqdm import tqdm

    total = sum(tensor.nbytes for tensor in order)
    names = ", ".join(Path(path).name for path in files)
    folder = Path(files[0]).parent if files else ""
    logger.info("Loading %s: streaming %s from %s (%s)", label, tqdm.format_sizeof(total, "B", 1024), names, folder)
    progress = _Progress(label, total, order[0].path if order else "")
    try:
        yield progress
    finally:
        progress.bar.close()
