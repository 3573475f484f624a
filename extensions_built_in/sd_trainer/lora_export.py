"""What happens to the LoRA files beyond the run folder: warnings about where they will not load, the Hub upload."""

from __future__ import annotations

from pathlib import Path

from toolkit.network.formats import format_warning
from toolkit.network.push_to_hub import push_lora_files, upload_problem


def saved_file_warnings(save_config, final_lora: Path, network_kind: str) -> list[str]:
    """Said once a run, before training: a format some tool would silently ignore, an upload that cannot work."""
    warnings = []
    if (warning := format_warning(save_config.format, final_lora, network_kind)) is not None:
        warnings.append(warning)
    if save_config.push_to_hub and (problem := upload_problem()) is not None:
        warnings.append(
            f"save.push_to_hub: {problem}, so the upload to {save_config.hf_repo_id} after training will fail; "
            "the LoRA is still saved locally"
        )
    return warnings


def push_final_lora(saved: dict[str, Path], save_config, job_name: str, step: int, tracer, logger) -> None:
    """After the local save: upload the final LoRA (and, with an EMA, the trained weights beside it) to
    `save.hf_repo_id` when `save.push_to_hub`."""
    if not save_config.push_to_hub:
        return
    files = [saved["final"], *([saved["final_no_ema"]] if "final_no_ema" in saved else [])]
    with tracer.span("push_to_hub", repo=save_config.hf_repo_id, private=save_config.hf_private, files=files) as span:
        url = push_lora_files(files, save_config.hf_repo_id, save_config.hf_private, f"{job_name}: LoRA after {step} steps")
        span.set(commit=url)
    logger.info("Uploaded %s to the Hub: %s", ", ".join(path.name for path in files), url)
