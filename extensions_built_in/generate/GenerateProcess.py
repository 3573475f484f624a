"""GenerateProcess: the `generate` process. Prompts from the config to .mp4 files with audio."""

from __future__ import annotations

from pathlib import Path

from toolkit.distributed import is_main_process
from toolkit.dry_run import dry_run_report
from toolkit.job import BaseProcess
from toolkit.run_lock import RunLock
from toolkit.run_setup import open_run


class GenerateProcess(BaseProcess):
    """Loads the model and writes `<output_folder>/<name>/<index>_<seed>.mp4` for each prompt."""

    def dry_run(self) -> str:
        """`run.py --dry-run`: the memory plan of this config, without reading any weights."""
        return dry_run_report(self.config.model, device=self.config.device)

    def run(self) -> list[Path]:
        # Held from before anything is written into the folder: a second generate job of the same name, or a
        # training run whose training_folder is this output_folder, would write its log and trace into this one's.
        # (Only the main process under a launcher: the others write into the same folder with it.)
        if not is_main_process():
            return self._generate(None)
        with RunLock(Path(self.config.output_folder) / self.job.name) as lock:
            return self._generate(lock.notice)

    def _generate(self, lock_notice: str | None) -> list[Path]:
        from toolkit.models.generation import GenerationSettings
        from toolkit.dry_run import trace_memory_plan
        from toolkit.extensions import load_model_class

        config = self.config
        settings_config = config.generate
        run = open_run(self.job.name, config.output_folder, config.model, config.logging)
        run_folder, tracer, logger = run.folder, run.tracer, run.logger
        if lock_notice is not None:
            logger.warning("%s", lock_notice)
        tracer.event("config_notes", **self.job.config.notes.trace_fields())
        trace_memory_plan(config.model)
        model = load_model_class(config.model.arch)(config.model, config.device).load_model()
        model.offload_transformer()
        written = []
        with tracer.span("generate", prompts=len(settings_config.prompts), folder=run_folder):
            for index, entry in enumerate(settings_config.prompts):
                seed = entry.seed if entry.seed is not None else settings_config.seed + index
                settings = GenerationSettings.from_sampling(settings_config, seed, entry.ctrl_img)
                clip = model.generate_single_image(entry.prompt, run_folder / f"{index:03d}_{seed}.mp4", settings)
                logger.info(
                    "wrote %s (%d frames %dx%d, %d audio samples at %d Hz)",
                    clip.path, clip.num_frames, clip.width, clip.height, clip.audio_samples, clip.sample_rate,
                )
                written.append(clip.path)
        self.outputs = written
        logger.finish()
        return written
