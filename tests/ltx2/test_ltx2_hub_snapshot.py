"""A hub id loads from its snapshot in the local Hugging Face cache: no request to the hub when the cache holds
every file the run reads, one download of exactly those files when it does not, a clear error when neither works.

The cache here is a temporary one holding the tiny LTX-2 under a made-up id, laid out as huggingface_hub lays
out what it downloads; every connection the process tries is recorded and refused.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import types
from pathlib import Path

import pytest
import torch

from benchmarks import bench_offline_hub
from extensions_built_in.diffusion_models.ltx2 import streaming
from extensions_built_in.diffusion_models.ltx2.checkpoint import resolve_source
from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
from tests.conftest import tiny_model_config
from toolkit.errors import ModelLoadError
from toolkit.hub_snapshot import download_command, fetch_snapshot, local_snapshot, missing_files

REPO = "acme/tiny-ltx2"
TINY_INDEX_PATTERNS = [
    "model_index.json", "tokenizer/*", "text_encoder/*", "connectors/*", "transformer/*", "vae/*", "audio_vae/*",
    "vocoder/*", "scheduler/*",
]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache for this test; returns it."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def connections(monkeypatch):
    """Every host name the process tries to resolve (the first step of any request to the hub), each refused.

    The suite runs with HF_HUB_OFFLINE=1 (tests/conftest.py), which stops requests before they start; here it
    is off, so that a request the loader makes is tried, and recorded."""
    import huggingface_hub.constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # huggingface_hub fetches a registry once per process when it builds request headers: not yet fetched here,
    # so that building them counts as a request whichever test ran before
    monkeypatch.setattr(_detect_agent, "_registry", None)
    monkeypatch.setattr(huggingface_hub.constants, "AGENT_HARNESSES_PATH", "/nonexistent/agent-harnesses.json")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub retries a refused request 5 times with backoff (23 s): no waiting, so a regression fails fast
    no_wait = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    no_wait.sleep = lambda seconds: None
    monkeypatch.setattr(huggingface_hub.utils._http, "time", no_wait)
    tried = []

    def refuse(host, *args, **kwargs):
        tried.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "this test reaches no network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return tried


def cache_snapshot(cache: Path, model_dir: Path) -> Path:
    """`model_dir` as the snapshot of REPO's main branch in `cache`, as huggingface_hub lays it out."""
    return bench_offline_hub.cache_snapshot(cache, model_dir, REPO)


def test_a_cached_hub_id_loads_from_its_snapshot_streamed_and_asks_the_hub_nothing(
    tiny_model, tiny_model_dir, hub_cache, connections
):
    snapshot = cache_snapshot(hub_cache, tiny_model_dir)
    model = LTX2Model(tiny_model_config(name_or_path=REPO), "cpu").load_model()

    assert (model.source.kind, model.source.location, model.source.base) == ("hub", REPO, str(snapshot))
    assert streaming.plan_stream(model.source, "transformer", torch.float32).model is not None  # a folder streams
    for name, tensor in tiny_model.transformer.state_dict().items():
        assert torch.equal(model.transformer.state_dict()[name], tensor), name
    assert model.get_prompt_embeds(["a red square"]).as_tensors().keys()  # the tokenizer and text encoder read too
    assert connections == []


def test_the_memory_plan_of_a_cached_hub_id_reads_its_configs(tiny_model_dir, hub_cache, connections):
    from toolkit.config.network import NetworkConfig
    from toolkit.dry_run import planned_lora

    network = NetworkConfig(type="lora", linear=8, linear_alpha=8)
    published = planned_lora(tiny_model_config(name_or_path=REPO), network).params  # not cached: published LTX-2
    cache_snapshot(hub_cache, tiny_model_dir)
    cached = planned_lora(tiny_model_config(name_or_path=REPO), network).params
    folder = planned_lora(tiny_model_config(name_or_path=str(tiny_model_dir)), network).params

    assert cached == folder < published
    assert connections == []


def test_a_dry_run_resolution_never_downloads(hub_cache, connections, monkeypatch):
    import huggingface_hub

    def no_download(*args, **kwargs):
        raise AssertionError(f"a dry run downloaded {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    source = resolve_source(REPO)  # not cached: the id stays, for the dry run's local-only lookups
    assert (source.kind, source.base) == ("hub", REPO)
    assert connections == []


def test_a_hub_id_not_in_the_cache_is_downloaded_once_for_the_files_the_run_reads(
    tiny_model_dir, hub_cache, connections, monkeypatch
):
    """The hub is a stand-in here: a snapshot download fills the cache with the tiny model; what matters is what
    the loader asks of it (one request, for exactly the folders a run reads), and that it asks once."""
    import huggingface_hub

    asked = []
    real_snapshot = huggingface_hub.snapshot_download

    def hub_snapshot(repo_id, allow_patterns=None, local_files_only=False, **kwargs):
        if local_files_only:
            return real_snapshot(repo_id, allow_patterns=allow_patterns, local_files_only=True, **kwargs)
        asked.append((repo_id, allow_patterns))
        return str(cache_snapshot(hub_cache, tiny_model_dir))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub_snapshot)
    components = ("tokenizer", "text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder", "scheduler")

    first = fetch_snapshot(REPO, components)
    assert asked == [(REPO, TINY_INDEX_PATTERNS)]
    assert fetch_snapshot(REPO, components) == first  # now cached: nothing asked again
    assert len(asked) == 1 and connections == []


def test_an_unreachable_hub_is_one_error_with_the_download_command(hub_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot reach the hub: offline mode is enabled.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelLoadError) as raised:
        LTX2Model(tiny_model_config(name_or_path=REPO), "cpu").load_model()
    message = str(raised.value)
    assert f"hub id {REPO}" in message and "offline mode is enabled" in message
    assert "hf download acme/tiny-ltx2 --include model_index.json --include 'tokenizer/*'" in message


def test_a_repo_that_is_no_diffusers_checkpoint_is_named_as_such(tmp_path, hub_cache, monkeypatch):
    import huggingface_hub

    not_diffusers = tmp_path / "snapshot"
    (not_diffusers / "transformer").mkdir(parents=True)  # what allow_patterns let through: no model_index.json
    (not_diffusers / "transformer" / "config.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: str(not_diffusers))
    with pytest.raises(ModelLoadError, match=r"lacks model_index\.json"):
        fetch_snapshot(REPO, ("transformer",))


def test_a_snapshot_missing_a_shard_is_incomplete(tiny_model_dir, hub_cache, connections):
    snapshot = cache_snapshot(hub_cache, tiny_model_dir)
    index = {"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                            "b.weight": "model-00002-of-00002.safetensors"}}
    (snapshot / "text_encoder" / "model.safetensors.index.json").write_text(json.dumps(index))
    (snapshot / "text_encoder" / "model-00001-of-00002.safetensors").write_bytes(b"")

    assert missing_files(snapshot, TINY_INDEX_PATTERNS) == ["text_encoder/model-00002-of-00002.safetensors"]
    assert local_snapshot(REPO, ("text_encoder",)) is None
    assert local_snapshot(REPO, ("transformer", "vae")) == snapshot  # what this load reads is all there
    with pytest.raises(ModelLoadError, match=r"(?s)lacks text_encoder/model-00002-of-00002\.safetensors.*hf download"):
        fetch_snapshot(REPO, ("text_encoder",))  # the hub cannot supply it: every connection is refused
    assert connections  # it asked


def test_a_model_folder_without_its_weights_is_incomplete(tiny_model_dir, hub_cache, connections):
    """An interrupted download of single files (as from_pretrained fetches them) leaves a config without weights."""
    snapshot = cache_snapshot(hub_cache, tiny_model_dir)
    (snapshot / "vocoder" / "diffusion_pytorch_model.safetensors").unlink()

    assert missing_files(snapshot, TINY_INDEX_PATTERNS) == ["vocoder/ weights (no *.safetensors or *.bin)"]
    assert local_snapshot(REPO, ("vocoder",)) is None
    assert local_snapshot(REPO, ("tokenizer", "scheduler", "vae")) == snapshot  # no config.json: no weights due
    assert connections == []


def test_a_single_file_reads_what_it_lacks_from_a_cached_hub_base_that_holds_only_that(
    tiny_model_dir, hub_cache, connections, tmp_path
):
    """A single file holds the transformer, connectors, VAEs and vocoder: its base needs only the text encoder,
    tokenizer and scheduler in the cache (a user downloads just those of a 40 GB repo)."""
    from tests.ltx2.single_file_writer.write import save_single_file

    single_file = save_single_file(tiny_model_dir, tmp_path / "ltx-2-tiny.safetensors")
    snapshot = cache_snapshot(hub_cache, tiny_model_dir)
    for name in ("transformer", "connectors", "vae", "audio_vae", "vocoder"):
        shutil.rmtree(snapshot / name)

    source = resolve_source(str(single_file), base_model_path=REPO, fetch=True)
    assert (source.kind, source.base) == ("single_file", str(snapshot))
    assert set(source.single_file_components) == {"transformer", "connectors", "vae", "audio_vae", "vocoder"}
    assert resolve_source(REPO).base == REPO  # as a checkpoint of its own, the cache lacks most of it
    assert connections == []


def test_download_command_quotes_patterns():
    assert download_command(REPO, ["model_index.json", "transformer/*"]) == (
        "hf download acme/tiny-ltx2 --include model_index.json --include 'transformer/*'"
    )
