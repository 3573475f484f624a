"""Project error types.

Every error a user can act on is one of these, with a message that says what
went wrong, where (file, YAML key, module) and what to do about it. `run.py`
prints such messages without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class ToolkitError(Exception):
    """Base of every error raised on purpose by the project: the toolkit, the extensions, run.py."""


class ConfigError(ToolkitError):
    """A job config (or an extension registration) is invalid.

    `problems` holds one line per problem, each starting with the YAML key
    path it is about (``config.process[0].model.qtype: ...``); `source` names
    the file (or files) the config came from, when there is one.
    """

    def __init__(self, problems: str | Sequence[str], source: str | None = None) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        if self.source is None and len(self.problems) == 1:
            return self.problems[0]
        where = f"Invalid config {self.source}" if self.source else "Invalid config"
        count = len(self.problems)
        header = f"{where} ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  - {problem}" for problem in self.problems)])


class ExtensionError(ToolkitError):
    """A registered extension could not be imported or does not fit its contract."""


class DataError(ToolkitError):
    """A dataset file (clip, image, caption, audio track) cannot be used."""


class ModelLoadError(ToolkitError):
    """A model component could not be loaded from the given path or hub id."""


class CheckpointError(ToolkitError):
    """A LoRA or training checkpoint could not be saved, found or loaded."""


class TrainingError(ToolkitError):
    """Training cannot go on, e.g. the loss or the gradients are no longer finite numbers."""


class HubUploadError(ToolkitError):
    """`save.push_to_hub` could not upload the LoRA (offline, no token, refused); the local files are kept."""


class RunFolderInUse(ToolkitError):
    """Another run holds the run folder's lock (`run.lock`, toolkit/run_lock.py)."""


class FileSystemError(ToolkitError):
    """A file could not be written or created (disk full, read-only file system, no permission, name too long).

    The message names the path, what the run was doing and what survived (the last good save).
    """
