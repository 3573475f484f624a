"""save.push_to_hub: the hub client's offline mode and missing token give a clear error; uploads go through HfApi.

Nothing here reaches the network: offline mode and the token are the hub
client's own checks, and the upload itself goes to a stand-in of `HfApi`
(the API boundary) that records what it was asked to do.
"""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from toolkit.errors import HubUploadError
from toolkit.network.push_to_hub import push_lora_files, upload_problem


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records create_repo / create_commit and what the files held."""

    calls: list[tuple] = []
    fail_with: Exception | None = None

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))

    def create_commit(self, repo_id, operations, commit_message, repo_type):
        uploaded = {op.path_in_repo: open(op.path_or_fileobj, "rb").read() for op in operations}
        self.calls.append(("create_commit", repo_id, uploaded, commit_message, repo_type))

        class Commit:
            commit_url = f"https://huggingface.co/{repo_id}/commit/0123abcd"

        return Commit()


@pytest.fixture
def online_with_token(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_stand_in_token")


@pytest.fixture
def stand_in_api(monkeypatch, online_with_token):
    import huggingface_hub

    RecordingHfApi.calls, RecordingHfApi.fail_with = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return RecordingHfApi


@pytest.fixture
def lora_files(tmp_path):
    files = [tmp_path / "my_lora.safetensors", tmp_path / "my_lora_no_ema.safetensors"]
    for index, path in enumerate(files):
        path.write_bytes(bytes([index]) * 64)
    return files


def test_offline_mode_is_a_clear_error_naming_the_local_files(monkeypatch, lora_files):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUploadError) as raised:
        push_lora_files(lora_files, "me/my-lora", private=False, commit_message="test")
    message = str(raised.value)
    assert "offline mode" in message and "me/my-lora" in message
    assert str(lora_files[0]) in message and str(lora_files[1]) in message
    assert f"hf upload me/my-lora {lora_files[0]} my_lora.safetensors" in message


def test_no_token_is_a_clear_error(monkeypatch, tmp_path, lora_files):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token_here"))
    assert "hf auth login" in upload_problem()
    with pytest.raises(HubUploadError, match="no Hugging Face token"):
        push_lora_files(lora_files, "me/my-lora", private=False, commit_message="test")


def test_upload_creates_the_repo_and_commits_the_files_at_its_root(stand_in_api, lora_files):
    url = push_lora_files(lora_files, "me/my-lora", private=True, commit_message="my_lora: LoRA after 3 steps")
    assert url == "https://huggingface.co/me/my-lora/commit/0123abcd"
    (create, commit) = stand_in_api.calls
    assert create == ("create_repo", "me/my-lora", "model", True, True)
    assert commit[0:2] == ("create_commit", "me/my-lora") and commit[3:] == ("my_lora: LoRA after 3 steps", "model")
    assert commit[2] == {"my_lora.safetensors": bytes([0]) * 64, "my_lora_no_ema.safetensors": bytes([1]) * 64}


def test_a_refused_upload_keeps_the_hub_reason(stand_in_api, lora_files):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    response = httpx2.Response(403, request=request)
    stand_in_api.fail_with = HfHubHTTPError("403 Forbidden: you cannot write to me/my-lora", response=response)
    with pytest.raises(HubUploadError) as raised:
        push_lora_files(lora_files[:1], "me/my-lora", private=False, commit_message="test")
    assert "HfHubHTTPError: 403 Forbidden" in str(raised.value) and str(lora_files[0]) in str(raised.value)
    assert isinstance(raised.value.__cause__, HfHubHTTPError)
