"""Fixtures shared by every test folder: the tiny LTX-2, built once per test session."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_CLIPS = REPO_ROOT / "data" / "demo_clips"

# One BLAS/OpenMP thread, here and in every child process (they inherit os.environ): the tiny model's
# matrices are too small to split, and on a busy 2-core machine a second thread mostly spins
# (test_trainer_resume.py: 27 CPU-s with 1 thread, 37 with 2, on a nearly idle machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test reaches a model hub: a hub id that is not in the local cache fails at once instead of
# retrying over the network (a dry run of a 24 GB example waited 23 s in back-off without a network).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from toolkit.deferred_packages import defer  # noqa: E402

defer()  # as run.py does: peft would import bitsandbytes (seconds) in every test process
# Collecting imports every test module and, through them, the libraries: as run.py's command line does
# (toolkit/gc_pause.py), no garbage collection until that is done (pytest_collection_finish).
gc.disable()


def pytest_collection_finish(session) -> None:
    gc.enable()

# LTX-2 pipeline arguments that switch every guidance off: one conditional forward per denoising step.
NO_GUIDANCE = {
    "guidance_scale": 1.0,
    "audio_guidance_scale": 1.0,
    "stg_scale": 0.0,
    "audio_stg_scale": 0.0,
    "modality_scale": 1.0,
    "audio_modality_scale": 1.0,
    "guidance_rescale": 0.0,
    "audio_guidance_rescale": 0.0,
}


@pytest.fixture(scope="session")
def tiny_cache_dir(tmp_path_factory) -> Path:
    """A private cache for `tiny-ltx2`, so tests never touch (or depend on) the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("ltx2_trace_cache")
    previous = os.environ.get("LTX2_TRACE_CACHE")
    os.environ["LTX2_TRACE_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LTX2_TRACE_CACHE", None)
    else:
        os.environ["LTX2_TRACE_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_cache_dir) -> Path:
    """The tiny LTX-2 in diffusers layout (model_index.json and one folder per component)."""
    from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2

    return ensure_tiny_ltx2()


def tiny_model_config(**overrides):
    """A validated ModelConfig for the tiny model (fp32 on the CPU)."""
    from toolkit.config import ModelConfig

    values = {"name_or_path": "tiny-ltx2", "arch": "ltx2", "dtype": "fp32"}
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """A loaded LTX2Model on the tiny checkpoint. Shared: tests must not modify it (copy what they train)."""
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model

    return LTX2Model(tiny_model_config(name_or_path=str(tiny_model_dir)), "cpu").load_model()


@pytest.fixture(scope="session")
def tiny_models(tiny_model):
    """Loaded LTX2Models of each tiny version, built and loaded on first use: `tiny_models("2.3")`.

    "2.0" is `tiny_model`. Shared like it: tests must not modify them.
    """
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2

    loaded = {"2.0": tiny_model}

    def get(version: str):
        if version not in loaded:
            folder = ensure_tiny_ltx2(version=version)
            loaded[version] = LTX2Model(tiny_model_config(name_or_path=str(folder)), "cpu").load_model()
        return loaded[version]

    return get


@pytest.fixture(scope="session")
def ltx_core():
    """Lightricks' ltx-core (requirements-ltx-core.txt), its configurators, key maps and LoRA fusion.

    ltx-core imports torchaudio at module level for its mel preprocessor (`AudioProcessor`), and torchaudio
    has no build for this torch. None of what the tests use needs it, so for the length of the import a
    placeholder stands in that fails loudly if anything reaches for it; it is removed again right after,
    and transformers' own "is torchaudio there" answer is fixed (it caches it) before the placeholder exists.
    """
    import sys
    import types

    import transformers.utils.import_utils

    transformers.utils.import_utils.is_torchaudio_available()

    class _NoTorchaudio(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)  # module introspection (inspect, pytest) asks for dunders
            raise ImportError(f"torchaudio.{name}: torchaudio is not installed (no build for this torch)")

    had_torchaudio = "torchaudio" in sys.modules
    sys.modules.setdefault("torchaudio", _NoTorchaudio("torchaudio"))
    try:
        from ltx_core import loader
        from ltx_core.model.audio_vae import model_configurator as audio
        from ltx_core.model.transformer import model_configurator as transformer
        from ltx_core.model.video_vae import model_configurator as video
        from ltx_core.text_encoders.gemma.encoders import encoder_configurator as text
    except ImportError as error:
        raise ImportError(
            f"{error}: the ltx-core tests need it installed: pip install --no-deps -r requirements-ltx-core.txt"
        ) from error
    finally:
        if not had_torchaudio:
            del sys.modules["torchaudio"]
    return types.SimpleNamespace(loader=loader, audio=audio, transformer=transformer, video=video, text=text)


@pytest.fixture(scope="session")
def demo_clips() -> Path:
    return DEMO_CLIPS


def read_jsonl(path: Path) -> list[dict]:
    """Every line of a trace.jsonl, parsed strictly (a NaN or Infinity constant fails)."""

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant} in {path}")

    return [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]


@pytest.fixture
def jsonl_reader():
    return read_jsonl


@pytest.fixture
def project_logs(caplog):
    """caplog that also hears the project's own loggers at WARNING and above.

    A LogManager configured by an earlier test (any run in this process) stops propagation at the
    project's root logger, where Python's root (caplog's usual place) no longer hears it. The same
    record may then arrive twice; assert with `in`, not with counts.
    """
    import logging

    project_root = logging.getLogger("ltx2_trace")
    project_root.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING), caplog.at_level(logging.WARNING, logger="ltx2_trace"):
            yield caplog
    finally:
        project_root.removeHandler(caplog.handler)


@pytest.fixture(scope="session")
def traced_tiny_run(tmp_path_factory, tiny_cache_dir) -> Path:
    """The run folder of one 12-step tiny training, shared by every test that only reads what it wrote.

    Verbose trace (steps 0, 1, 2 and every 5th), TensorBoard (scalars every 2 steps, diagnostics every
    5), one sample prompt sampled at steps 0, 6 and 12, saves at 6 and 12: what tests/trainer's trace
    tests and tests/monitoring's TensorBoard tests read. Training it once instead of once per module
    keeps the suite near its time budget; tests must not write into it.
    """
    from tests.trainer.conftest import build_trainer, write_config
    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    folder = tmp_path_factory.mktemp("traced_tiny_run")
    config = write_config(
        folder,
        {
            "model.verbose": True,
            "model.trace_every": 5,
            "model.trace_first_steps": 3,
            "model.heartbeat_s": 0,
            "train.steps": 12,
            "train.disable_sampling": False,
            "sample.sample_every": 6,
            "sample.sample_steps": 2,
            "sample.prompts": ["a red square moving left to right, with a 440 Hz tone"],
            "save.save_every": 6,
            "logging": {"log_every": 2, "diagnostic_every": 5, "flush_every": 5, "use_tensorboard": True},
        },
    )
    trainer = build_trainer(config)
    try:
        trainer.run()
    finally:
        reset_tracer()  # flush and close the trace files
        LogManager.get_instance().cleanup()
    return trainer.run_folder
