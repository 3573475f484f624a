"""`.safetensors` files: written so that a failed write is an OSError with its errno, and checked from the header.

`safetensors.torch.save_file` writes from Rust and reports a full disk or a read-only folder as a
`SafetensorError` whose only trace of the cause is its text. `write_safetensors` serialises in
memory (`safetensors.torch.save`, the same bytes) and writes them with Python's own file I/O, so
the error is the OSError the system gave (ENOSPC, EROFS, EACCES, ...), with the path.

`safetensors_problem` checks a file without reading a tensor: the 8-byte header length, the JSON
header, and that the tensors' data offsets fill the file exactly (a truncated or padded file fails).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

_LENGTH_BYTES = 8
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit


def write_safetensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` to `path` (torch tensors, same bytes as `save_file`); failures raise OSError naming `path`."""
    from safetensors.torch import save

    data = save(tensors, metadata=metadata)
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as error:
        if error.filename is None:  # write() reports ENOSPC without the file it was writing
            error.filename = str(path)
        raise


class SafetensorsHeaderError(ValueError):
    """A .safetensors header that cannot be what it says (a length past the file's end, not a JSON object)."""


def read_header(path: str | Path) -> tuple[dict, int]:
    """A .safetensors file's JSON header (with `__metadata__`) and the offset where its tensor data starts.

    The header is read only when its stated length fits the file (a damaged length could ask for gigabytes);
    SafetensorsHeaderError says what is wrong otherwise, ValueError is a header that is not JSON.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(_LENGTH_BYTES))
        if length > min(size - _LENGTH_BYTES, _MAX_HEADER_BYTES):
            raise SafetensorsHeaderError(f"{path.name} says its header is {length} bytes but the file is {size} bytes")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{path.name} has a header that is not a JSON object")
    return header, _LENGTH_BYTES + length


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with `path` as a .safetensors file (missing, truncated, bad header), or None when it is whole."""
    try:
        size = path.stat().st_size
        if size < _LENGTH_BYTES:
            return f"{path.name} is {size} bytes, shorter than a safetensors header"
        header, data_start = read_header(path)
    except FileNotFoundError:
        return f"{path.name} is missing"
    except SafetensorsHeaderError as error:
        return str(error)
    except (OSError, ValueError) as error:  # ValueError: JSON or UTF-8 of a damaged header
        return f"{path.name} cannot be read as safetensors ({error})"
    try:
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
    except (KeyError, TypeError, ValueError, IndexError):
        return f"{path.name} has a header without valid data_offsets"
    data_bytes = size - data_start
    expected = max(ends, default=0)
    if expected != data_bytes:
        return f"{path.name} holds {data_bytes} bytes of tensor data but its header describes {expected}"
    return None
