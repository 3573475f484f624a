from __future__ import annotations

import enum
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from toolkit.trace import describe, describe_module, describe_tensor


def test_float_tensor_stats_ignore_nan_and_count_it():
    tensor = torch.tensor([[1.0, 2.0], [3.0, float("nan")]])
    assert describe_tensor(tensor) == {
        "shape": [2, 2],
        "dtype": "torch.float32",
        "device": "cpu",
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
        "nan": 1,
    }


def test_all_nan_tensor_has_no_min_max_mean():
    description = describe_tensor(torch.full((3,), float("nan")))
    assert description["nan"] == 3
    assert description["min"] is None and description["mean"] is None


def test_integer_and_bool_tensors_get_min_max_only():
    assert describe_tensor(torch.tensor([4, -2, 9])) == {
        "shape": [3],
        "dtype": "torch.int64",
        "device": "cpu",
        "min": -2,
        "max": 9,
    }
    flags = describe_tensor(torch.tensor([True, False]))
    assert (flags["min"], flags["max"]) == (False, True)
    assert "mean" not in flags


@pytest.mark.parametrize(
    "tensor",
    [torch.empty(0, 4), torch.empty(2, 3, device="meta"), torch.zeros(2, dtype=torch.complex64)],
    ids=["empty", "meta", "complex"],
)
def test_tensors_without_stats_get_shape_dtype_device(tensor):
    assert describe_tensor(tensor) == {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
        "device": str(tensor.device),
    }


def test_low_precision_tensors_get_stats():
    values = torch.tensor([-1.5, 0.5, 2.0])
    for dtype in (torch.bfloat16, torch.float16, torch.float8_e4m3fn):
        description = describe_tensor(values.to(dtype))
        assert (description["min"], description["max"]) == (-1.5, 2.0), dtype
        assert description["mean"] == pytest.approx(1 / 3, abs=1e-6)


def test_tensor_requiring_grad_is_described_without_grad_tracking():
    weight = nn.Parameter(torch.ones(2, 2))
    assert describe_tensor(weight)["mean"] == 1.0
    assert "tensor_type" not in describe_tensor(weight)


def test_module_counts_params_trainable_dtype_device():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert describe_module(model) == {
        "class": "Sequential",
        "params": 4 * 3 + 3 + 3 * 2 + 2,
        "trainable": 3 * 2 + 2,
        "dtype": "torch.float32",
        "device": "cpu",
    }
    model[1].half()
    assert describe(model)["dtype"] == "torch.float16+torch.float32"


def test_module_without_parameters():
    assert describe_module(nn.ReLU()) == {
        "class": "ReLU",
        "params": 0,
        "trainable": 0,
        "dtype": None,
        "device": None,
    }


def test_plain_values_dtypes_devices_paths():
    class Strategy(enum.Enum):
        TILED = "tiled"

    assert describe(3) == 3 and describe(0.5) == 0.5 and describe("x") == "x" and describe(None) is None
    assert describe(torch.bfloat16) == "torch.bfloat16"
    assert describe(torch.device("cpu")) == "cpu"
    assert describe(Path("/data/clips/a.mp4")) == "/data/clips/a.mp4"
    assert describe(Strategy.TILED) == "tiled"
    assert describe(np.float32(1.5)) == 1.5


def test_numpy_array_is_described_like_a_tensor():
    waveform = np.array([[0.0, -0.5], [0.25, 1.0]], dtype=np.float32)
    description = describe(waveform)
    assert description["shape"] == [2, 2]
    assert description["dtype"] == "numpy.float32"
    assert (description["min"], description["max"], description["mean"]) == (-0.5, 1.0, 0.1875)


def test_list_of_tensors_is_cut_to_eight_plus_count():
    tensors = [torch.full((2,), float(index)) for index in range(10)]
    described = describe(tensors)
    assert len(described) == 9
    assert [item["min"] for item in described[:8]] == [float(index) for index in range(8)]
    assert described[8] == "... 2 more (10 total)"
    assert describe(tuple(tensors[:2]))[1]["shape"] == [2]


def test_plain_lists_and_dicts_are_kept_whole():
    names = [f"transformer_blocks.{index}.attn1.to_q" for index in range(30)]
    assert describe(names) == names
    assert describe({"lr": 1e-4, "steps": 10}) == {"lr": 1e-4, "steps": 10}


def test_dict_of_tensors_is_described_per_key():
    described = describe({"video": torch.zeros(1, 4), "audio": torch.ones(2)})
    assert described["video"]["shape"] == [1, 4]
    assert described["audio"]["mean"] == 1.0


def test_other_objects_become_a_short_repr():
    class Long:
        def __repr__(self) -> str:
            return "L" * 500

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert describe(Long()) == "L" * 197 + "..."
    assert "repr failed: RuntimeError: no repr" in describe(Broken())
    assert math.isnan(describe(float("nan")))
