"""The folders the UI may read and change, and the one check every path a request names goes through.

A request names a run as (training folder index, run name) and a file inside it as a relative path;
a dataset as (dataset folder index, relative path). `inside` resolves the path (symlinks followed)
and refuses anything that ends up outside its base folder: `..`, absolute paths, backslashes and NUL
are refused before resolving, and a symlink that points out is refused after. Starlette has already
decoded `%2e%2e%2f` to `../` by the time a path reaches here, so encoded forms meet the same check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ToolkitError


class PathRefused(ToolkitError):
    """A request named a path outside the folders the UI serves (answered 403)."""


class NotFound(ToolkitError):
    """A request named a run, file or folder that does not exist (answered 404)."""


@dataclass
class Folders:
    """Where runs are (`training`), where datasets are (`datasets`), and the folder jobs run in (`workdir`).

    Relative paths in job configs are relative to `workdir`, which is where `run.py` runs.
    """

    training: list[Path]
    datasets: list[Path]
    workdir: Path
    state: Path = field(init=False)  # the UI's own files (SQLite, pending uploads), hidden in the first training folder

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.training = [self.absolute(path) for path in self.training]
        self.datasets = [self.absolute(path) for path in self.datasets]
        self.state = self.training[0] / ".ltx2-ui"

    def absolute(self, path: str | Path) -> Path:
        """`path` as run.py would see it (relative to `workdir`), resolved."""
        path = Path(path).expanduser()
        return (path if path.is_absolute() else self.workdir / path).resolve()

    def training_folder(self, index: int) -> Path:
        if not 0 <= index < len(self.training):
            raise NotFound(f"no training folder number {index} (the UI serves {len(self.training)})")
        return self.training[index]

    def dataset_folder(self, index: int) -> Path:
        if not 0 <= index < len(self.datasets):
            raise NotFound(f"no dataset folder number {index} (the UI serves {len(self.datasets)})")
        return self.datasets[index]

    def run_folder(self, index: int, name: str) -> Path:
        """The run `name` directly in training folder `index`; a symlinked run folder must stay inside too."""
        if not is_plain_name(name):
            raise PathRefused(f"{name!r} is not a run name")
        folder = inside(self.training_folder(index), name)
        if not folder.is_dir():
            raise NotFound(f"{folder} is not a run folder")
        return folder

    def locate_run(self, folder: Path) -> tuple[int, str] | None:
        """(training folder index, name) of a run folder directly in one of the training folders, else None."""
        folder = self.absolute(folder)
        for index, base in enumerate(self.training):
            if folder.parent == base and is_plain_name(folder.name):
                return index, folder.name
        return None


def is_plain_name(name: str) -> bool:
    """One visible path component: no separator, not `.`/`..`, not hidden."""
    return bool(name) and "/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")


def inside(base: Path, relative: str) -> Path:
    """`base / relative`, resolved; PathRefused when it is not inside `base`, NotFound when it does not exist."""
    if "\x00" in relative or "\\" in relative or relative.startswith("/"):
        raise PathRefused(f"{relative!r} is not a relative path inside the served folders")
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise PathRefused(f"{relative!r} leaves the served folders")
    base = base.resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and not path.is_relative_to(base):
        raise PathRefused(f"{relative!r} points outside the served folders (a link to {path})")
    if not path.exists():
        raise NotFound(f"{relative!r} does not exist")
    return path
