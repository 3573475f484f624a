"""The model interface (toolkit/models/base_model.py): what the toolkit asks a model class, through the registry."""

from __future__ import annotations

import re

import pytest
import torch

from toolkit.config import NetworkConfig
from toolkit.extensions import arch_rules, load_model_class
from toolkit.memory_management.plan_settings import MemoryPlanSettings
from toolkit.models.base_model import BaseModel, LoraFileKeys
from toolkit.models.model_inputs import PromptEmbeds
from toolkit.network.formats import load_lora_state, save_lora
from toolkit.network.lora import resolve_targets


def test_every_ltx2_arch_resolves_to_a_model_implementing_the_interface():
    for arch in ("ltx2", "ltx2.3", "ltx2.5"):
        model_class = load_model_class(arch)
        assert issubclass(model_class, BaseModel) and not model_class.__abstractmethods__
        assert model_class.rules is arch_rules(arch)  # what the config loader read is what the class answers
    ltx2 = load_model_class("ltx2")
    assert re.fullmatch(ltx2.lora_target_pattern(), "transformer_blocks.3.audio_to_video_attn.to_q")
    assert not re.fullmatch(ltx2.lora_target_pattern(), "transformer_blocks.3.attn1.to_gate_logits")
    assert ltx2.lora_file_keys().to_original("transformer_blocks.0.audio_ff.net.0.proj") == "transformer_blocks.0.audio_ff.net.0.proj"
    assert ltx2.lora_file_keys().to_original("proj_in") == "patchify_proj"
    assert "proj_in" in ltx2.quantization_excludes()["transformer"] and "lm_head" in ltx2.quantization_excludes()["text_encoder"]
    assert dict(ltx2.tiny_names()) == {"tiny-ltx2": "2.0", "tiny-ltx2.3": "2.3", "tiny-ltx2.5": "2.5"}


def test_tiny_model_and_plan_components_come_from_the_class(tiny_model_dir, tiny_model):
    ltx2 = load_model_class("ltx2")
    folder = ltx2.ensure_tiny("tiny-ltx2")
    assert folder == tiny_model_dir and (folder / "model_index.json").is_file()
    planned = ltx2.memory_plan_components(MemoryPlanSettings(name_or_path="tiny-ltx2", arch="ltx2"))
    components = planned.components
    assert list(components)[:3] == ["text_encoder", "connectors", "transformer"]
    assert components["transformer"].params == sum(p.numel() for p in tiny_model.transformer.parameters())


def test_an_arch_missing_a_hook_cannot_be_built():
    class Half(BaseModel):
        arch = "half"

        @classmethod
        def lora_target_pattern(cls) -> str:
            return r".*\\.to_q"

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_original_format_needs_the_models_key_names(tmp_path):
    state = {"blocks.0.to_q.lora_A.weight": torch.ones(2, 4), "blocks.0.to_q.lora_B.weight": torch.ones(4, 2)}
    with pytest.raises(ValueError, match="save.format: comfy.*lora_file_keys"):
        save_lora(tmp_path / "a.safetensors", state, "comfy", torch.float32, {}, 2.0)
    keys = LoraFileKeys(
        to_original=lambda name: name.replace("blocks.", "layers."),
        to_diffusers=lambda tensors: {k.replace("diffusion_model.layers.", "transformer.blocks."): v for k, v in tensors.items()},
    )
    path = save_lora(tmp_path / "b.safetensors", state, "comfy", torch.float32, {}, 2.0, keys=keys)
    from safetensors.torch import load_file

    assert sorted(load_file(str(path))) == ["diffusion_model.layers.0.to_q.lora_A.weight", "diffusion_model.layers.0.to_q.lora_B.weight"]
    with pytest.raises(ValueError, match="b.safetensors is in the original"):
        load_lora_state(path)
    loaded = load_lora_state(path, keys=keys)
    torch.testing.assert_close(loaded["blocks.0.to_q.lora_A.weight"], state["blocks.0.to_q.lora_A.weight"])


def test_default_targets_are_the_callers_to_give():
    layer = torch.nn.Sequential()
    layer.add_module("to_q", torch.nn.Linear(2, 2))
    layer.add_module("to_k", torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no default LoRA targets"):
        resolve_targets(layer, NetworkConfig())
    assert resolve_targets(layer, NetworkConfig(), default_targets=r"to_k") == ["to_k"]


def test_prompt_embeds_are_joined_moved_and_cached_without_knowing_the_streams():
    one = PromptEmbeds({"video": torch.ones(1, 3, 4), "audio": torch.zeros(1, 3, 2)}, torch.tensor([[0, 1, 1]]),
                       {"text_states": torch.ones(1, 3, 8)})
    other = PromptEmbeds({"video": torch.full((1, 3, 4), 2.0), "audio": torch.ones(1, 3, 2)}, torch.tensor([[1, 1, 1]]))
    batch = PromptEmbeds.cat([one, other, one])
    assert batch.batch_size == 3 and batch["video"][:, 0, 0].tolist() == [1.0, 2.0, 1.0]
    assert batch.for_sampling == {}  # kept only when every prompt has it
    assert one.repeat(2).for_sampling["text_states"].shape == (2, 3, 8)
    assert batch.rows_equal(one) == [True, False, True]
    halved = batch.to(dtype=torch.float16)
    assert halved["video"].dtype == torch.float16 and halved.attention_mask.dtype == torch.int64  # masks keep theirs
    cached = one.as_tensors()
    assert sorted(cached) == ["attention_mask", "audio_embeds", "video_embeds"]  # the cache files' keys
    back = PromptEmbeds.from_tensors(cached)
    assert back.rows_equal(one) == [True] and torch.equal(back.attention_mask, one.attention_mask)


def test_the_transformer_has_one_owner_that_every_phase_reads(tiny_model):
    """What `replace_transformer` puts in place (FSDP's wrapper in a sharded run) is what prediction, sampling and
    the observers use; LoRA files are written by the toolkit's save_model, which no arch overrides."""
    from extensions_built_in.diffusion_models.ltx2.generation import build_pipeline

    model = type(tiny_model)(tiny_model.config, "cpu")
    model.components.update(tiny_model.components)
    calls = []

    class Wrapped(torch.nn.Module):
        """Like FSDP's wrapper: the module inside, its attributes read through."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.inner, name)

        def forward(self, **kwargs):
            calls.append(sorted(kwargs))
            return self.inner(**kwargs)

    wrapped = Wrapped(tiny_model.transformer)
    model.replace_transformer(wrapped)
    assert model.transformer is wrapped and model.components["transformer"] is wrapped
    assert build_pipeline(model.generation).transformer is wrapped
    prompt = model.get_prompt_embeds(["a red square"])
    with torch.no_grad():
        model.get_noise_prediction(torch.randn(1, 4, 2, 2, 2), torch.randn(1, 2, 5, 2), torch.tensor([0.5]), prompt, 24.0)
    assert len(calls) == 1 and "hidden_states" in calls[0]
    assert type(tiny_model).save_model is BaseModel.save_model
