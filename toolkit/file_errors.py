"""File-system errors as one line: the path, what the system said in plain words, and what to do.

A full disk, a read-only mount, a folder this user may not write, or a name longer than the file
system takes are the machine's state, not bugs: `file_system_errors` turns the OSError (or a
project error caused by one, like a cache that could not be written) into a `FileSystemError`
whose message names the path, what the run was doing and what survived. Other errors pass.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from toolkit.errors import FileSystemError, ToolkitError

# errno -> (what happened, what to do about it)
FILE_SYSTEM_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "make it writable or choose another training_folder"),
    errno.EACCES: ("permission denied", "give this user write access or choose another training_folder"),
    errno.EPERM: ("operation not permitted", "give this user write access or choose another training_folder"),
    errno.ENAMETOOLONG: ("the name is too long for the file system", "shorten config.name"),
}


def file_system_cause(error: BaseException) -> OSError | None:
    """The OSError among `error` and its causes whose errno is in FILE_SYSTEM_ERRORS, or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in FILE_SYSTEM_ERRORS:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe(error: OSError) -> str:
    """`<path>: <what happened> (<ERRNO NAME>)`."""
    reason, _ = FILE_SYSTEM_ERRORS[error.errno]
    where = error.filename if error.filename is not None else "a file"
    return f"{where}: {reason} ({errno.errorcode[error.errno]})"


def advice(error: OSError) -> str:
    return FILE_SYSTEM_ERRORS[error.errno][1]


@contextmanager
def file_system_errors(doing: Callable[[], str], outcome: Callable[[str], str]) -> Iterator[None]:
    """Re-raise a file-system error of the block as one FileSystemError line:
    `<path>: <reason> (<ERRNO>) while <doing()>. <outcome(advice)>.`

    `doing` says what the run was doing then ("saving step 6"); `outcome` says what survived and
    how to go on, given the advice for this error ("free some space").
    """
    try:
        yield
    except (OSError, ToolkitError) as error:
        cause = file_system_cause(error)
        if cause is None or isinstance(error, FileSystemError):
            raise
        raise FileSystemError(f"{describe(cause)} while {doing()}. {outcome(advice(cause))}.") from error
