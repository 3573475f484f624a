"""SDTrainer: the `sd_trainer` process. Trains a LoRA on a model's video and audio streams (LTX-2, or any arch).

`run` reads top to bottom as the run happens: set up, load, encode the
data, free the text encoder, attach the LoRA, resume, then step, sample
and save until done. `hook_train_loop` is one optimizer step; the loss it
minimises is the strategy object it holds (`step_loss`: FlowMatchingLoss,
step_loss.py), and resuming is the plan it holds (`resume`: resuming.py).
The model is reached only through the toolkit's interface
(toolkit/models/base_model.py), whatever `model.arch` names.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch
import yaml

from toolkit import distributed
from toolkit.data.held_out import split_off_files
from toolkit.dry_run import dry_run_report
from toolkit.job import BaseProcess
from toolkit.logging.run_status import RunStatusFile
from toolkit.run_lock import RunLock
from toolkit.run_setup import RunContext, open_run
from toolkit.stopping import Stopped
from toolkit.trace import memory_snapshot

from . import checkpoints, save_space
from .callbacks import StepResult, TrainingCallback
from .distributed_training import DataParallel
from .ema import LoraEMA
from .evaluation import Evaluation
from .gradient_clipping import ClippedGradients, clip_gradients
from .held_out import split_held_out
from .preservation import OutputPreservation, encode_class_prompts
from .trigger import TriggerWord
from .tensorboard_callback import TensorBoardCallback
from .interrupts import StopRequest
from .lora_export import push_final_lora, saved_file_warnings
from .lora_metadata import TrainedClips, file_metadata, run_metadata
from .network_strength import adapter_strength
from .nonfinite import WeightUpdate
from .optim import build_grad_scaler, build_optimizer, build_scheduler
from .finished_run import report_finished, summarise_run
from .network_setup import attach_trained_network
from .run_checks import check_run_settings
from .resuming import ResumePlan, resume_point
from .run_guard import RunGuard
from .sampling import TrainingSampler, first_sample_due, sample_due
from .step_loss import FlowMatchingLoss
from .sharded_training import ShardedLora, check_fsdp_run, shard_transformer
from .training_data import ExampleOrder, empty_prompt, encode_datasets, open_datasets, text_encoder_may_wait


class SDTrainer(BaseProcess):
    """LoRA training on the video and audio streams of the model `model.arch` names (docs/training.md)."""

    def run(self) -> None:
        config = self.config
        check_run_settings(config)
        self.guard = RunGuard(Path(config.training_folder) / self.job.name)
        # The main process holds the folder's lock from before anything is written there until the run ends.
        self.lock = RunLock(self.guard.run_folder) if distributed.is_main_process() else None
        with self.guard.reporting(), self.lock or contextlib.nullcontext():
            self.parallel = DataParallel.start(config.device, config.train.distributed_timeout_minutes)
            try:
                if self.parallel.fsdp:
                    check_fsdp_run(config)
                self._run()
            finally:
                self.parallel.end()

    def _run(self) -> None:
        config = self.config
        self.resume, run = self._open_run()
        plan = self.resume
        self.step = plan.step
        # status.json, written by the main process: what the UI and scripts read about the run. A rerun of a
        # finished run changes nothing in its folder, its status included. The guard inside it makes a full
        # disk or a signal the same one line in status.json as on the console.
        recording = self.parallel.is_main and plan.step < config.train.steps
        self.status = RunStatusFile(run.folder, config.train.steps, plan.step) if recording else None
        with self.status.recording(lambda: self.step) if self.status else contextlib.nullcontext():
            with self.guard.reporting():
                self._train_run(run, plan)

    def _train_run(self, run: RunContext, plan: ResumePlan) -> None:
        config = self.config
        if plan.step >= config.train.steps:
            self.step, self.saved = plan.step, report_finished(run, self.job.name, config.train.steps, plan.step, plan.folder)
            return
        # Before loading: the saves to come are the size of the last one, or of the memory plan's LoRA (configs only).
        room_checked_for = save_space.check_before_loading(
            self.run_folder, self.job.name, config, plan.step, plan.folder is not None, self.guard.how_to_go_on(),
            self.logger,
        ) if self.parallel.is_main else None
        torch.manual_seed(config.train.seed)

        with self.tracer.span("sd_trainer", job=self.job.name, steps=config.train.steps, folder=self.run_folder):
            self.model = self._load_model()
            self.trigger = TriggerWord(config.trigger_word)
            self.data = self._encode_data()
            self.preservation = self._build_preservation()
            self.sampler = TrainingSampler(
                self.model, config.sample, self.run_folder, caption_transform=self.trigger.sample_prompt
            )
            if not config.train.disable_sampling and self.parallel.is_main:
                self.sampler.encode_prompts()
            self.empty_prompt = empty_prompt(self.model, config.datasets, self.run_folder)
            if config.train.unload_text_encoder:
                self.model.unload_text_encoder()

            self.network = attach_trained_network(self.model, config, self.tracer)
            self.run_metadata = run_metadata(
                config, self.job.name, self.model.base_model_names(), self.network.kind, TrainedClips.of(self.data.examples)
            )
            self.parallel.start_equal(self.network.parameters())  # before the EMA copies it
            if self.parallel.fsdp:  # every forward goes through FSDP, which shards the base weights
                self.network = ShardedLora(self.network)  # names taken before wrapping
                self.model.replace_transformer(shard_transformer(self.model.transformer, self.network, self.parallel.accelerator))
            self.optimizer = build_optimizer(self.network.parameters(), config.train)
            self.scheduler = build_scheduler(self.optimizer, config.train)
            self.updates = WeightUpdate(
                self.optimizer,
                build_grad_scaler(config.train.dtype, self.model.device),
                config.train.nonfinite,
                lambda: checkpoints.latest_checkpoint(self.run_folder),
                self.tracer,
                self.logger,
            )
            per_step = self.parallel.effective_batch(config.train.batch_size, config.train.gradient_accumulation)
            self.order = ExampleOrder([example.is_reg for example in self.data.examples], config.train.seed, per_step)
            self.ema = LoraEMA(self.network, config.train.ema_config.ema_decay) if config.train.ema_config.use_ema else None
            self.step_loss = FlowMatchingLoss(
                config.train, self.model, self.data, self.order, self.empty_prompt, self.preservation, self.network
            )
            self.evaluation = Evaluation.for_trainer(self)
            self.step = plan.load_into(
                network=self.network, ema=self.ema, evaluation=self.evaluation, optimizer=self.optimizer,
                scheduler=self.scheduler, scaler=self.updates.scaler, model_metadata=self._model_metadata(),
                lr=config.train.lr, name=self.job.name, logger=self.logger, tracer=self.tracer,
            )
            if plan.folder is None and self.parallel.is_main:  # unless the plan sized this LoRA before loading
                save_space.check_after_attach(
                    self.run_folder, self.job.name, config, self.guard.how_to_go_on(), self.network.num_parameters,
                    room_checked_for, self.logger,
                )
            self.parallel.check_same(self.step, "step to resume from")
            self.callbacks = self._build_callbacks()
            self._warn_about_the_saved_files()
            self._train()
        summarise_run(self.logger, self.step, self.updates.skipped, self.data, self.saved, self.evaluation.summary())
        try:
            if self.parallel.is_main:
                self._push_to_hub()
        finally:
            self.logger.finish()

    def dry_run(self) -> str:
        """`run.py --dry-run`: the memory plan of this config, without reading any weights."""
        check_run_settings(self.config, import_package=False)
        run_folder = Path(self.config.training_folder) / self.job.name
        disk = save_space.dry_run_room(run_folder, self.job.name, self.config)
        return dry_run_report(self.config.model, self.config.network, self.config.device, [disk])

    # -- set-up phases -----------------------------------------------------
    def _open_run(self) -> tuple[ResumePlan, RunContext]:
        """The save to resume from (a change it cannot take stops the run here, before loading), then the run's
        log and trace, which say what the resume found."""
        with self.parallel.main_first():  # the main process renames damaged saves; the others then find the same one
            plan = resume_point(
                self.guard.run_folder, self.config, f"config.process[{self.process_index}]",
                str(self.job.config_path) if self.job.config_path else None, rename=self.parallel.is_main,
            )
        run = open_run(self.job.name, self.config.training_folder, self.config.model, self.config.logging, plan.step)
        self.run_folder, self.tracer, self.logger = run.folder, run.tracer, run.logger
        if self.lock is not None and self.lock.notice:
            self.logger.warning("%s", self.lock.notice)
        self.tracer.event("config_notes", **self.job.config.notes.trace_fields())
        self.parallel.describe(self.tracer, self.logger, self.config.train)
        plan.report(self.logger, self.tracer)
        return plan, run

    def _build_callbacks(self) -> list[TrainingCallback]:
        """Observers of the run: the metrics (always: metrics.jsonl, TensorBoard), the rest opt-in from the config."""
        callbacks: list[TrainingCallback] = [TensorBoardCallback.for_run(self.logger, self.config.logging)]
        if self.ema is not None:
            callbacks.append(self.ema)
        if self.config.logging.inspect:
            from .inspection_callback import InspectionCallback

            callbacks.append(InspectionCallback(self.config.logging.inspect_every, self.run_folder, self.logger.tensorboard))
        return callbacks

    def _notify(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _load_model(self):
        from toolkit.dry_run import trace_memory_plan
        from toolkit.extensions import load_model_class

        trace_memory_plan(self.config.model, self.config.network)
        model_class = load_model_class(self.config.model.arch)
        model = model_class(self.config.model, self.parallel.device(self.config.device))
        # one process builds or reads first (the tiny model is built on first use)
        with self.guard.during("loading the model"), self.parallel.main_first():
            return model.load_model(defer_text_encoder=text_encoder_may_wait(self.config))

    def _encode_data(self):
        config = self.config
        datasets = open_datasets(config.datasets, self.model.audio_sample_rate, config.train.seed, self.model.rules)
        caching = any(d.cache_latents_to_disk or d.cache_text_embeddings for d in config.datasets)
        held_out_files = split_off_files(config.datasets, config.train.validation_split)
        # the main process writes the caches, the others then read them
        with self.guard.during("encoding and caching the clips"), self.parallel.main_first(caching):
            encoded = encode_datasets(
                self.model, datasets, config.datasets, self.run_folder, caption_transform=self.trigger.caption,
                held_out_files=held_out_files,
            )
        return split_held_out(encoded, config.datasets, held_out_files)

    def _build_preservation(self):
        """Differential output preservation's class captions, encoded while the text encoder is loaded."""
        train = self.config.train
        if not train.diff_output_preservation:
            return None
        captions = [example.caption for example in self.data.examples]
        class_prompts = encode_class_prompts(
            self.model, captions, self.config.trigger_word, train.diff_output_preservation_class
        )
        return OutputPreservation(class_prompts, train)

    def _warn_about_the_saved_files(self) -> None:
        if not self.parallel.is_main:
            return  # about files only the main process writes: said once
        final = self.run_folder / checkpoints.lora_filename(self.job.name, None)
        for warning in saved_file_warnings(self.config.save, final, self.network.kind):
            self.logger.warning(warning)

    # -- the loop ----------------------------------------------------------
    def _train(self) -> None:
        with self.guard.during("training"):
            self._train_steps()

    def _train_steps(self) -> None:
        train = self.config.train
        sampling = not train.disable_sampling and self.sampler.prompts and self.parallel.is_main
        self._notify("on_train_start")
        self.evaluation.before_first_step(self.step)
        if sampling and first_sample_due(self.step, train, self.config.sample):
            self._notify("on_sample", self.step, self._sample(self.step))
        self.logger.start_progress(train.steps, desc=self.parallel.progress_label(self.job.name, train), initial=self.step)
        try:
            self._steps(sampling)
        finally:
            self.logger.flush()  # the metrics still queued for the writer thread reach the files, however the loop ends
        self.logger.close_progress()
        self.save(final=True)
        self._notify("on_train_end")

    def _steps(self, sampling: bool) -> None:
        """Step, save and sample until `train.steps`, or until a stop request (saved, then `Stopped`)."""
        train = self.config.train
        with StopRequest() as stop:
            while self.step < train.steps:
                result = self.hook_train_loop(self.step)
                self.step += 1
                stopping = self.parallel.any_process(stop.requested)
                self.logger.update_progress(
                    1, batch_size=result.samples, loss=f"{result.loss:.4f}", lr=f"{result.lr:.2e}", **self.evaluation.postfix()
                )
                if not stopping:  # after the step's metrics (steps in order); a stop saves and exits at once
                    self.evaluation.after_step(self.step)
                if (self.step % self.config.save.save_every == 0 and self.step < train.steps) or stopping:
                    self.save()
                if sampling and sample_due(self.step, train, self.config.sample):
                    self._notify("on_sample", self.step, self._sample(self.step))
                if stopping:
                    self.parallel.wait_for_everyone()  # no process exits while the main one still saves
                    self.logger.close_progress()
                    self.logger.warning(
                        "Stopped by %s at step %d; saved. Run the same config again to resume.",
                        stop.signal_name or "another process", self.step,
                    )
                    raise Stopped(stop.signum)

    def _sample(self, step: int) -> list[Path]:
        """Sample with the EMA weights when the EMA is on (swapped back afterwards)."""
        weights = self.ema.applied("sampling") if self.ema is not None else contextlib.nullcontext()
        with self.guard.during(f"sampling at step {step}"), weights:
            return self.sampler.sample(step)

    def hook_train_loop(self, step: int) -> StepResult:
        """One optimizer step: `gradient_accumulation` micro-batches of `batch_size` clips.

        A step whose loss or gradients are not finite updates nothing (see nonfinite.py).
        """
        train = self.config.train
        keep_details = any(callback.wants_details(step) for callback in getattr(self, "callbacks", []))
        started, data_seconds = time.perf_counter(), 0.0
        with self.tracer.step_scope(step), self.tracer.span(
            "hook_train_loop", step=step, micro_batches=train.gradient_accumulation, batch_size=train.batch_size,
            processes=self.parallel.world_size,
        ) as span:
            self.optimizer.zero_grad(set_to_none=True)
            totals = torch.zeros(3)
            aux_totals: dict[str, float] = {}
            everyone = self.order.positions(step)
            positions = self.parallel.share(everyone)
            for micro in range(train.gradient_accumulation):
                micro_positions = positions[micro * train.batch_size : (micro + 1) * train.batch_size]
                for strength, members in self.step_loss.by_network_weight(micro_positions).items():
                    share = len(members) / len(micro_positions) / train.gradient_accumulation
                    # The backward runs at the same strength: gradient checkpointing recomputes the forward there.
                    with adapter_strength(self.model.transformer, strength):
                        parts = self.step_loss.compute(members, step, keep_details)
                        self.updates.backward(parts.loss * share)
                    # One read-back for the three (the loss is needed every step: the non-finite guard, the progress bar).
                    losses = torch.stack([parts.loss.detach(), parts.video.detach(), parts.audio.detach()])
                    totals += losses.float().cpu() * share
                    for name, value in parts.auxiliary.items():
                        aux_totals[name] = aux_totals.get(name, 0.0) + value.item() * share
                    data_seconds += parts.data_seconds
            totals, aux_totals = self.parallel.average_step(self.network.parameters(), totals, aux_totals)
            self.updates.unscale()
            grad_norm, gradients = self._clip_gradients()
            lr = self.scheduler.get_last_lr()[0]
            updated = self.updates.apply(step, {"video": totals[1].item(), "audio": totals[2].item(), **aux_totals}, grad_norm)
            self.scheduler.step()
            if updated:
                self._notify("on_optimizer_step", step)
            result = StepResult(
                *totals.tolist(), grad_norm, lr, time.perf_counter() - started, samples=len(everyone),
                aux_losses=aux_totals, data_seconds=data_seconds, skipped=not updated, gradients=gradients,
            )
            span.set(
                loss=result.loss,
                video_loss=result.video_loss,
                audio_loss=result.audio_loss,
                aux_losses=aux_totals,
                grad_norm=grad_norm,
                lr=lr,
                step_seconds=result.seconds,
                data_seconds=result.data_seconds,
                skipped=result.skipped,
            )
            span.set(lambda: {"memory": memory_snapshot()})
        self._notify("on_step_end", step, result, self.step_loss.last_details if keep_details else None)
        return result

    def _clip_gradients(self) -> tuple[float, ClippedGradients | None]:
        """The total gradient norm before clipping, and each gradient's norm for the metrics (None under FSDP)."""
        max_norm = self.config.train.max_grad_norm if self.config.train.max_grad_norm > 0 else float("inf")
        if self.parallel.fsdp:  # sharded gradients: torch's own clipping reduces their norms across processes
            return float(torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm)), None
        clipped = clip_gradients(self.network.named_parameters(), max_norm)
        return clipped.total_norm, clipped

    # -- saving ------------------------------------------------------------
    def _model_metadata(self) -> dict:
        """What the base model is (for LTX-2: its version and flags), in the LoRA's header and state.json."""
        return dict(self.model.metadata())

    def save(self, final: bool = False) -> None:
        """The checkpoint (and with `final` the LoRA files); written by the main process only."""
        if not self.parallel.is_main:
            self.saved = {}
            return
        with self.guard.during(f"saving step {self.step}"):
            self._save(final)

    def _save(self, final: bool) -> None:
        state = checkpoints.TrainingState(
            step=self.step,
            lora_state=self.network.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            scheduler_state=self.scheduler.state_dict(),
            rng_state=checkpoints.rng_state(),
            extra={"name": self.job.name, **self.evaluation.state()},
            lora_alpha=self.network.alpha,
            lora_rank=self.network.rank,
            ema_state=self.ema.state_dict() if self.ema is not None else None,
            scaler_state=self.updates.scaler.state_dict() if self.updates.scaler.is_enabled() else None,
            model_metadata=self._model_metadata(),
            file_metadata=file_metadata(self.run_metadata, self.model.base_model_names(), self.config.save.format, self.step),
        )
        config_text = yaml.safe_dump(self.job.config.model_dump(mode="json"), sort_keys=False)
        written = checkpoints.save_training_state(
            self.model, self.run_folder, self.job.name, state, self.config.save, config_text, self.config.save.max_step_saves_to_keep
        )
        if final:
            written.update(checkpoints.save_final_loras(self.model, self.run_folder, self.job.name, state, self.config.save))
        self.saved = written
        self.status.update(self.step)
        self._notify("on_save", self.step, written["checkpoint"])

    def _push_to_hub(self) -> None:
        push_final_lora(self.saved, self.config.save, self.job.name, self.step, self.tracer, self.logger)
