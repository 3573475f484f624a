"""Write a file so that readers see the old file or the whole new one, never half of it.

    with atomic_write(path) as temporary:
        write_safetensors(tensors, temporary)

The body writes `temporary` (a fresh name in `path`'s folder, with `path`'s suffix, since
writers such as PyAV pick the container by it); when the body returns, the file is flushed
to disk (fsync) and renamed over `path` (`os.replace`, atomic within one file system). When
the body raises, the temporary file is deleted and `path` is left as it was; an OSError about the
temporary file (disk full, read-only folder) is re-raised naming `path`. Each call gets
its own temporary name, so two processes writing the same path do not write into one file.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


# The bytes `temporary_name` adds to a file's name, at most: ".", ".<pid>" (up to 7 digits), ".<8 hex>", ".tmp".
TEMPORARY_NAME_EXTRA_BYTES = 1 + 8 + 9 + 4


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path` that no other writer uses: `.<stem>.<pid>.<random>.tmp<suffix>`."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


@contextmanager
def atomic_write(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it over `path` when the body succeeds.

    `durable` flushes the file's bytes to disk before the rename, so a power cut leaves the old
    file or the new one (not an empty one). A file rewritten every few seconds and worth nothing
    after a crash (the Chrome trace) passes False and saves the fsync.
    """
    path = Path(path)
    temporary = temporary_name(path)
    try:
        yield temporary
        if durable:
            flush_to_disk(temporary)
        os.replace(temporary, path)
    except OSError as error:
        if error.filename is None or os.fspath(error.filename) == os.fspath(temporary):
            error.filename = str(path)  # a full disk or a read-only folder is reported under the name the user knows
        raise
    finally:
        _remove(temporary)


def _remove(temporary: Path) -> None:
    try:
        temporary.unlink(missing_ok=True)
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:  # a name too long to create was never created: nothing to remove
            raise


def flush_to_disk(path: Path) -> None:
    """fsync a file written by someone else's writer (safetensors, torch.save, PyAV)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
