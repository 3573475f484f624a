"""save.push_to_hub in a run: the LoRA is saved locally first; offline ends the run with exit code 1 and a clear error.

The upload goes to a stand-in of huggingface_hub.HfApi (tests/network/test_network_push_to_hub.py);
offline mode is the hub client's own switch. Nothing reaches the network.
"""

from __future__ import annotations

from huggingface_hub import constants
from safetensors.torch import load_file

import run
from tests.network.test_network_push_to_hub import RecordingHfApi
from tests.trainer.conftest import write_config

NAME = "hub_test"
HUB = {"save.push_to_hub": True, "save.hf_repo_id": "me/ltx2-lora", "train.steps": 1}


def test_offline_run_saves_locally_then_exits_1_naming_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config = write_config(tmp_path, HUB, name=NAME)
    assert run.main([str(config)]) == run.EXIT_RUNTIME_ERROR
    final = tmp_path / "output" / NAME / f"{NAME}.safetensors"
    assert load_file(str(final))  # saved, and a LoRA
    error = capsys.readouterr().err
    assert "save.push_to_hub: could not upload to me/ltx2-lora" in error and "offline mode" in error
    assert str(final) in error and "hf upload me/ltx2-lora" in error
    log = (tmp_path / "output" / NAME / "train.log").read_text()
    early = [line for line in log.splitlines() if "upload to me/ltx2-lora after training will fail" in line]
    assert len(early) == 1 and "WARNING" in early[0]


def test_after_the_run_the_final_lora_and_the_one_without_ema_are_uploaded(tmp_path, monkeypatch):
    """push_final_lora, as SDTrainer calls it after the final save (the offline run above goes the same way)."""
    import huggingface_hub

    from extensions_built_in.sd_trainer.lora_export import push_final_lora
    from toolkit.config import SaveConfig
    from toolkit.trace import get_tracer

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_stand_in_token")
    RecordingHfApi.calls, RecordingHfApi.fail_with = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    saved = {"final": tmp_path / f"{NAME}.safetensors", "final_no_ema": tmp_path / f"{NAME}_no_ema.safetensors"}
    for index, path in enumerate(saved.values()):
        path.write_bytes(bytes([index + 5]) * 16)
    messages = []

    class Logger:
        def info(self, message, *args):
            messages.append(message % args)

    save = SaveConfig(push_to_hub=True, hf_repo_id="me/ltx2-lora", hf_private=True)
    push_final_lora(saved, save, NAME, 7, get_tracer(), Logger())
    (create, commit) = RecordingHfApi.calls
    assert create == ("create_repo", "me/ltx2-lora", "model", True, True)
    assert commit[2] == {f"{NAME}.safetensors": bytes([5]) * 16, f"{NAME}_no_ema.safetensors": bytes([6]) * 16}
    assert commit[3] == f"{NAME}: LoRA after 7 steps"
    assert messages == [
        f"Uploaded {NAME}.safetensors, {NAME}_no_ema.safetensors to the Hub: https://huggingface.co/me/ltx2-lora/commit/0123abcd"
    ]
    RecordingHfApi.calls = []
    push_final_lora(saved, SaveConfig(), NAME, 7, get_tracer(), Logger())  # push_to_hub off: nothing
    assert RecordingHfApi.calls == []
