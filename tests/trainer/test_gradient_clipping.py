"""clip_gradients: clip_grad_norm_ bit for bit, and the per-gradient norms the gradient metrics take from it."""

from __future__ import annotations

import pytest
import torch

from extensions_built_in.sd_trainer.gradient_clipping import clip_gradients
from toolkit.monitoring.tensorboard import TensorBoardFlags, TensorBoardMonitor

MIXED = [torch.float32, torch.bfloat16, torch.float32, torch.float16, torch.bfloat16, torch.float32]


def _named(dtypes: list[torch.dtype], seed: int = 0, without_grad: int | None = None) -> list[tuple[str, torch.nn.Parameter]]:
    generator = torch.Generator().manual_seed(seed)
    named = []
    for index, dtype in enumerate(dtypes):
        shape = (8, 16) if index % 2 else (16, 4)
        param = torch.nn.Parameter(torch.randn(shape, generator=generator).to(dtype))
        if index != without_grad:
            param.grad = (torch.randn(shape, generator=generator) * (index + 1)).to(dtype)
        named.append((f"transformer_blocks.{index // 2}.attn.to_{'qk'[index % 2]}.lora_A.weight", param))
    return named


def _copy(named):
    copied = []
    for name, param in named:
        twin = torch.nn.Parameter(param.detach().clone())
        twin.grad = None if param.grad is None else param.grad.clone()
        copied.append((name, twin))
    return copied


@pytest.mark.parametrize("dtypes", [[torch.float32] * 12, MIXED], ids=["fp32", "mixed dtypes"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6, float("inf")], ids=["clips", "under the limit", "no limit"])
def test_total_norm_and_clipped_gradients_are_clip_grad_norm_s_bit_for_bit(dtypes, max_norm):
    ours = _named(dtypes, without_grad=3)
    theirs = _copy(ours)
    expected = torch.nn.utils.clip_grad_norm_([param for _, param in theirs], max_norm)
    clipped = clip_gradients(ours, max_norm)
    assert clipped.total_norm == float(expected)
    for (name, mine), (_, reference) in zip(ours, theirs):
        assert (mine.grad is None) == (reference.grad is None), name
        if mine.grad is not None:
            assert torch.equal(mine.grad, reference.grad), name
    assert len(clipped.names) == len(dtypes) - 1 and ours[3][0] not in clipped.names


def test_applied_norms_are_the_norms_of_the_gradients_after_clipping():
    named = _named([torch.float32] * 6)
    before = {name: param.grad.norm().item() for name, param in named}
    clipped = clip_gradients(named, 1.0)
    assert clipped.total_norm == pytest.approx(sum(value**2 for value in before.values()) ** 0.5, rel=1e-6)
    assert clipped.total_norm > 1.0  # so the gradients were scaled down
    applied = clipped.applied_norms()
    assert applied == pytest.approx({name: param.grad.norm().item() for name, param in named}, rel=1e-5)
    assert sum(value**2 for value in applied.values()) ** 0.5 == pytest.approx(1.0, rel=1e-5)


def test_no_gradients_give_a_zero_norm_and_nothing_to_log():
    named = _named([torch.float32] * 2)
    for _, param in named:
        param.grad = None
    clipped = clip_gradients(named, 1.0)
    assert clipped.total_norm == 0.0 and clipped.applied_norms() == {}


class _Metrics:
    """The part of the logger the monitor writes scalars through."""

    is_main_process = True

    def __init__(self):
        self.logged: dict[str, float] = {}

    def log_metrics(self, metrics, step=None):
        self.logged.update(metrics)


def test_gradient_stats_from_the_clipping_equal_those_computed_from_the_gradients():
    named = _named([torch.float32] * 6, without_grad=5)
    clipped = clip_gradients(named, 1.0)
    given, computed = _Metrics(), _Metrics()
    TensorBoardMonitor(given, TensorBoardFlags(log_every=1)).log_gradients(
        0, named, clipped.total_norm, applied_norms=clipped.applied_norms
    )
    TensorBoardMonitor(computed, TensorBoardFlags(log_every=1)).log_gradients(0, named, clipped.total_norm)
    assert set(given.logged) == set(computed.logged) == {
        "11_Gradient_Stats/Block_Gradient_Norm/transformer_blocks.0",
        "11_Gradient_Stats/Block_Gradient_Norm/transformer_blocks.1",
        "11_Gradient_Stats/Block_Gradient_Norm/transformer_blocks.2",
        "11_Gradient_Stats/Total_Gradient_Norm",
        "11_Gradient_Stats/Params_Without_Grad",
    }
    assert given.logged == pytest.approx(computed.logged, rel=1e-5)
    assert given.logged["11_Gradient_Stats/Params_Without_Grad"] == 1
