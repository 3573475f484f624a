"""What stops a checkpoint of the wrong LTX-2 version or a mislabelled folder: the arch check, the saved-class
check and the meta-device build of `--dry-run`, all before any weight is read; and what a version changes in
the caches, the LoRA targets and the saved LoRA."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from safetensors import safe_open

from extensions_built_in.diffusion_models.ltx2.cache_identity import latent_identity
from extensions_built_in.diffusion_models.ltx2.checkpoint_check import build_on_meta, checkpoint_report
from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
from tests.conftest import tiny_model_config
from toolkit.errors import ConfigError, ModelLoadError
from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2


def copied_folder(tmp_path, version: str):
    folder = tmp_path / f"copy-{version}"
    shutil.copytree(ensure_tiny_ltx2(version=version), folder)
    return folder


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


# -- model.arch ----------------------------------------------------------------
def test_arch_that_disagrees_with_the_weights_fails_before_loading(tiny_cache_dir):
    folder = ensure_tiny_ltx2(version="2.3")
    model = LTX2Model(tiny_model_config(name_or_path=str(folder), arch="ltx2.5"), "cpu")
    with pytest.raises(ConfigError) as caught:
        model.load_model()
    message = str(caught.value)
    assert "model.arch: ltx2.5" in message and "LTX-2.3" in message and "set model.arch to ltx2.3" in message
    assert model.components == {}  # nothing was loaded


def test_matching_arch_and_plain_ltx2_are_accepted(tiny_cache_dir):
    folder = ensure_tiny_ltx2(version="2.3")
    for arch in ("ltx2.3", "ltx2"):
        lines = checkpoint_report(tiny_model_config(name_or_path=str(folder), arch=arch))
        assert lines[0].startswith("LTX-2 version: LTX-2.3 (gated_attn")
        assert "vocoder=LTX2VocoderWithBWE" in lines[1]


def test_arch_is_validated_against_the_registered_names():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="ltx2.3"):
        tiny_model_config(arch="ltx2.4")


# -- classes in model_index.json -------------------------------------------------
def test_2_0_vocoder_class_on_2_3_weights_is_a_load_error_naming_it(tmp_path, tiny_cache_dir):
    folder = copied_folder(tmp_path, "2.3")
    edit_json(folder / "model_index.json", vocoder=["ltx2", "LTX2Vocoder"])
    config = tiny_model_config(name_or_path=str(folder))
    for attempt in (lambda: LTX2Model(config, "cpu").load_model(), lambda: checkpoint_report(config)):
        with pytest.raises(ModelLoadError) as caught:
            attempt()
        message = str(caught.value)
        assert "vocoder" in message and "LTX2Vocoder" in message and "LTX2VocoderWithBWE" in message
        assert str(folder) in message and "model_index.json" in message


def test_gemma3_class_on_gemma4_weights_is_a_load_error_naming_it(tmp_path, tiny_cache_dir):
    folder = copied_folder(tmp_path, "2.5")
    edit_json(folder / "model_index.json", text_encoder=["transformers", "Gemma3ForConditionalGeneration"])
    with pytest.raises(ModelLoadError, match="text_encoder.*Gemma3ForConditionalGeneration.*Gemma4Unified"):
        LTX2Model(tiny_model_config(name_or_path=str(folder)), "cpu").load_model()


def test_meta_build_rejects_a_gemma4_config_under_gemma3_even_unlabelled(tmp_path, tiny_cache_dir):
    """Without `architectures` in config.json only building the class from the config can tell."""
    folder = copied_folder(tmp_path, "2.5")
    edit_json(folder / "model_index.json", text_encoder=["transformers", "Gemma3ForConditionalGeneration"])
    edit_json(folder / "text_encoder" / "config.json", architectures=None)
    with pytest.raises(ModelLoadError) as caught:
        build_on_meta(str(folder), "text_encoder")
    assert "text_encoder (Gemma3ForConditionalGeneration) cannot be built" in str(caught.value)
    assert "Gemma 4" in str(caught.value)


def test_meta_build_compares_weight_names_with_the_files(tmp_path, tiny_cache_dir):
    """A 2.3 vocoder's files under the 2.0 class, with its config's class name removed: the weight names differ."""
    folder = copied_folder(tmp_path, "2.3")
    edit_json(folder / "model_index.json", vocoder=["ltx2", "LTX2Vocoder"])
    edit_json(folder / "vocoder" / "config.json", _class_name=None)
    with pytest.raises(ModelLoadError, match=r"vocoder \(LTX2Vocoder\).*weights are not in the files"):
        build_on_meta(str(folder), "vocoder")
    module = build_on_meta(str(ensure_tiny_ltx2(version="2.3")), "vocoder")
    assert type(module).__name__ == "LTX2VocoderWithBWE"
    assert all(p.is_meta for p in module.parameters())


def test_dry_run_fails_on_the_mismatch_and_names_the_version_otherwise(tmp_path, tiny_cache_dir, capsys, monkeypatch):
    """run.py's main() with --dry-run, in this process (as tests/test_dry_run_examples.py runs it)."""
    import run
    from tests.conftest import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)  # the example names data/demo_clips relative to the repository
    folder = copied_folder(tmp_path, "2.3")
    example = REPO_ROOT / "config" / "examples" / "train_lora_ltx2.3_tiny.yaml"

    def dry_run(path):
        code = run.main(["--dry-run", str(example), "--set", f"config.process.0.model.name_or_path={path}"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = dry_run(folder)
    assert code == run.EXIT_OK, err
    assert "LTX-2 version: LTX-2.3" in out and f"(LTX-2.3)" in out
    assert "LTX2VocoderWithBWE" in out
    edit_json(folder / "model_index.json", vocoder=["ltx2", "LTX2Vocoder"])
    code, out, err = dry_run(folder)
    assert code == run.EXIT_RUNTIME_ERROR
    assert err.strip().splitlines()[-1].startswith("error: the vocoder of")
    assert "Traceback" not in err


# -- extra 2.5 components ----------------------------------------------------------
def test_extra_components_are_recognised_skipped_and_traced(tmp_path, tiny_cache_dir, jsonl_reader):
    from toolkit.trace import TraceConfig, init_tracer, reset_tracer

    folder = copied_folder(tmp_path, "2.5")
    edit_json(folder / "model_index.json", duration_head=["ltx2", "LTX2DurationHead"])
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path / "trace", console=False, heartbeat_s=0))
    try:
        model = LTX2Model(tiny_model_config(name_or_path=str(folder)), "cpu").load_model()
    finally:
        reset_tracer()
    assert "duration_head" not in model.components
    assert model.variant.extra_components == ("duration_head",)
    records = jsonl_reader(tmp_path / "trace" / "trace.jsonl")
    (skipped,) = [r for r in records if r.get("name") == "component_skipped"]
    assert skipped["fields"]["component"] == "duration_head" and skipped["fields"]["cls"] == "LTX2DurationHead"
    (load,) = [r for r in records if r["type"] == "span_end" and r["name"] == "load_model"]
    assert load["fields"]["variant"]["version"] == "2.5"


# -- caches --------------------------------------------------------------------------
def test_latent_cache_key_shares_2_3_and_2_5_only_with_equal_encoders(tiny_models):
    ltx20, ltx23, ltx25 = (tiny_models(version) for version in ("2.0", "2.3", "2.5"))
    assert ltx23.encoder_identity() == ltx25.encoder_identity()  # same VAE weights, other folder
    assert ltx20.encoder_identity() != ltx23.encoder_identity()  # another latent space
    changed = copy.deepcopy(ltx25.vae)
    with torch.no_grad():
        next(changed.encoder.parameters()).view(-1)[0] += 1e-3
    assert latent_identity("2.5", changed, ltx25.audio_vae) != ltx25.encoder_identity()
    decoder_only = copy.deepcopy(ltx25.vae)
    with torch.no_grad():
        next(decoder_only.decoder.parameters()).view(-1)[0] += 1.0
    assert latent_identity("2.5", decoder_only, ltx25.audio_vae) == ltx25.encoder_identity()


def test_text_cache_key_differs_between_every_version(tiny_models):
    keys = {tiny_models(version).text_encoder_identity() for version in ("2.0", "2.3", "2.5")}
    assert len(keys) == 3
    assert json.loads(tiny_models("2.3").text_encoder_identity())["ltx2_version"] == "2.3"


# -- LoRA targets and metadata ----------------------------------------------------------
def test_default_lora_leaves_gates_and_prompt_modulation_out_and_traces_it(tiny_models, tmp_path, jsonl_reader):
    from toolkit.config import NetworkConfig
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from toolkit.network.lora import attach_lora
    from toolkit.trace import TraceConfig, init_tracer, reset_tracer

    transformer = copy.deepcopy(tiny_models("2.3").transformer)
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    try:
        network = attach_lora(transformer, NetworkConfig(type="lora", linear=4, linear_alpha=4), 0, LTX2Model.lora_target_pattern())
    finally:
        reset_tracer()
    assert not any("to_gate_logits" in name or "prompt_adaln" in name for name in network.target_modules)
    assert any(name.endswith("attn1.to_q") for name in network.target_modules)
    (event,) = [r for r in jsonl_reader(tmp_path / "trace.jsonl") if r.get("name") == "lora_targets"]
    fields = event["fields"]
    assert fields["targeted"] == len(network.target_modules)
    assert fields["left_out_kinds"]["transformer_blocks.*.attn1.to_gate_logits"] == 2
    assert fields["left_out_kinds"]["prompt_adaln.linear"] == 1
    assert "transformer_blocks.*.attn1.to_gate_logits" not in fields["targeted_kinds"]


def test_saved_lora_and_state_json_name_the_version(tiny_models, tmp_path):
    from extensions_built_in.sd_trainer import checkpoints

    model = tiny_models("2.3")
    metadata = model.metadata()
    assert metadata["ltx2_version"] == "2.3" and metadata["ltx2_arch"] == "ltx2.3"
    state = checkpoints.TrainingState(
        step=3,
        lora_state={"transformer.proj_in.lora_A.weight": torch.ones(2, 4), "transformer.proj_in.lora_B.weight": torch.zeros(16, 2)},
        optimizer_state={}, scheduler_state={}, rng_state=checkpoints.rng_state(), extra={"name": "v"},
        lora_alpha=2.0, model_metadata=metadata,
    )
    save = type("Save", (), {"format": "diffusers", "dtype": "float32"})()
    checkpoints.save_training_state(model, tmp_path, "v", state, save, "config: {}\n", keep=2)
    with safe_open(str(tmp_path / checkpoints.lora_filename("v", 3)), framework="pt") as handle:
        header = handle.metadata()
    assert header["ltx2_version"] == "2.3" and json.loads(header["ltx2_variant"])["flags"]["gated_attn"] is True
    (saved,) = (tmp_path / checkpoints.CHECKPOINT_DIR).glob("step_*")
    assert json.loads((saved / "state.json").read_text())["ltx2_version"] == "2.3"


# -- the memory plan ---------------------------------------------------------------------
def test_published_2_3_plan_has_the_2_3_components():
    from toolkit.memory_management.plan import GIB, MemoryPlanSettings, build_memory_plan, format_plan

    plan = build_memory_plan(MemoryPlanSettings(version="2.3"), device_total_bytes=24 * GIB, host_total_bytes=64 * GIB)
    assert plan.source == "published LTX-2.3 22B architecture"
    params = {name: component.params for name, component in plan.components.items()}
    assert round(params["transformer"] / 1e9, 2) == 18.99
    assert round(params["connectors"] / 1e9, 2) == 3.17
    assert round(params["vocoder"] / 1e6, 1) == 128.5
    assert plan.components["vocoder"].class_name == "LTX2VocoderWithBWE"
    assert format_plan(plan).splitlines()[0].startswith("Memory plan for published LTX-2.3 22B architecture")
    tiny = build_memory_plan(MemoryPlanSettings(name_or_path="tiny-ltx2.3", version="2.3"), device_total_bytes=GIB)
    assert tiny.components["vocoder"].class_name == "LTX2VocoderWithBWE"


def test_resume_refuses_a_checkpoint_of_another_version(tmp_path):
    from extensions_built_in.sd_trainer.checkpoints import check_same_base_model
    from toolkit.errors import CheckpointError

    saved = {"step": 4, "ltx2_version": "2.0", "ltx2_arch": "ltx2"}
    check_same_base_model(saved, {"ltx2_version": "2.0", "ltx2_arch": "ltx2"}, tmp_path)
    check_same_base_model({"step": 4}, {"ltx2_version": "2.3"}, tmp_path)  # saved before versions were recorded
    with pytest.raises(CheckpointError, match="ltx2_version=2.0.*ltx2_version=2.3"):
        check_same_base_model(saved, {"ltx2_version": "2.3", "ltx2_arch": "ltx2.3"}, tmp_path)
