"""Which device a process asked for, and whether this machine has it.

One answer for the run (which stops with it before loading) and for `--dry-run` (which prints it
in one line and still plans, since a plan is often made on another machine than the one that
trains: a laptop for a 24 GB GPU box).
"""

from __future__ import annotations

from toolkit.errors import ModelLoadError


def device_unavailable(device: str) -> str | None:
    """Why this machine cannot run on `device` (a CUDA device torch does not see), or None when it can."""
    if not device.startswith("cuda"):
        return None  # cpu, and auto (which falls back to the CPU)
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")
        return f"device: {device!r} was asked for but torch sees no CUDA device ({build}); use device: cpu"
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return (
            f"device: {device!r} was asked for but torch sees {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )
    return None


def resolve_device(device: str) -> str:
    """`device` as torch names it (`auto`: cuda when there is one); a ModelLoadError when it is not here."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    reason = device_unavailable(device)
    if reason is not None:
        raise ModelLoadError(reason)
    return device
