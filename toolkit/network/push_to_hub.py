"""`save.push_to_hub`: upload the final LoRA files to a Hugging Face Hub model repo.

It runs after the files are saved locally, so a failed upload never costs the
training: the error (HubUploadError, exit code 1) names the local files and
the command that uploads them later. Whether an upload can work at all
(offline mode, no token) is the hub client's own judgement
(`huggingface_hub.constants.is_offline_mode`, `huggingface_hub.get_token`);
the trainer asks it at the start of the run too, to warn early.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolkit.errors import HubUploadError


def upload_problem() -> str | None:
    """Why an upload cannot work from this machine now (offline mode, no token), or None."""
    from huggingface_hub import constants, get_token

    if constants.is_offline_mode():
        return "the Hugging Face Hub client is in offline mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set)"
    if get_token() is None:
        return "no Hugging Face token is set (log in with `hf auth login` or set HF_TOKEN)"
    return None


def _failure(files: Sequence[Path], repo_id: str, why: str) -> HubUploadError:
    local = ", ".join(str(path) for path in files)
    later = " && ".join(f"hf upload {repo_id} {path} {path.name}" for path in files)
    return HubUploadError(
        f"save.push_to_hub: could not upload to {repo_id}: {why}. The LoRA is saved locally ({local}); "
        f"upload it later with: {later}"
    )


def push_lora_files(files: Sequence[Path], repo_id: str, private: bool, commit_message: str) -> str:
    """Create `repo_id` if needed (private or not) and add `files` at its root in one commit; returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HTTPError

    problem = upload_problem()
    if problem is not None:
        raise _failure(files, repo_id, problem)
    api = HfApi()
    operations = [CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path)) for path in files]
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    except (OSError, HTTPError) as error:  # the hub's HTTP errors, offline mode, no connection
        raise _failure(files, repo_id, f"{type(error).__name__}: {error}") from error
    return str(commit.commit_url)
