"""Data-parallel training of one LoRA over N processes (`accelerate launch` or `torchrun`).

Each process trains on its share of every global batch; once per optimizer step
the LoRA gradients (and the step's losses) are averaged over the processes in one
all-reduce, so every process applies the same update and ends with the same LoRA.
That is what DDP does with `no_sync` over the accumulation steps, done on the
LoRA's parameters instead of by wrapping the transformer: the transformer is
called through the model class, at changing adapter strengths, with gradient
checkpointing and with extra passes (output preservation), none of which DDP's
one-forward-one-backward reducer allows without `find_unused_parameters` and
per-backward synchronisation.

accelerate owns the process group (`Accelerator`: gloo on CPU, NCCL on CUDA, a
timeout on every collective) and the collectives (`reduce`, `broadcast`,
`gather`, `wait_for_everyone`, `main_process_first`). With one process there is
no Accelerator and every method here is a no-op: a single-process run is what it
was before. A failed or killed process is noticed by the launcher, which stops
the others at once; a process stuck waiting for a peer gives up after
`train.distributed_timeout_minutes`.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import torch

from toolkit import distributed
from toolkit.errors import ConfigError, TrainingError

# accelerate launches that shard the model some other way (ACCELERATE_USE_<NAME> from `accelerate launch`): refused.
# FSDP is supported (sharded_training.py).
_SHARDED_LAUNCHES = ("DEEPSPEED", "MEGATRON_LM")


class DataParallel:
    """The processes of one run; `DataParallel.start` gives the single-process one when there is no launcher."""

    def __init__(self, accelerator=None, fsdp: bool = False) -> None:
        self.accelerator = accelerator
        self.fsdp = fsdp  # the transformer's base weights sharded with FSDP (sharded_training.py)
        self.rank = distributed.rank()
        self.world_size = distributed.world_size()
        self.is_main = self.rank == 0

    @classmethod
    def start(cls, device: str, timeout_minutes: float) -> "DataParallel":
        """Join the launcher's processes (`WORLD_SIZE` > 1), or a single process without accelerate."""
        if distributed.world_size() == 1:
            return cls()
        from accelerate import Accelerator
        from accelerate.utils import InitProcessGroupKwargs, parse_flag_from_env

        sharded = [name for name in _SHARDED_LAUNCHES if parse_flag_from_env(f"ACCELERATE_USE_{name}")]
        if sharded:
            raise ConfigError(
                f"accelerate launch with {sharded[0]}: sd_trainer trains the LoRA data-parallel, every process "
                "holding the whole transformer, or with FSDP. Launch with `accelerate launch --multi_gpu "
                "--num_processes N` (config/accelerate/multi_gpu.yaml), or for a bf16 transformer that does not "
                "fit one GPU with config/accelerate/fsdp.yaml (run.py --dry-run prints the plan per GPU)."
            )
        accelerator = Accelerator(
            cpu=device == "cpu",
            kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=timeout_minutes))],
        )
        return cls(accelerator, fsdp=parse_flag_from_env("ACCELERATE_USE_FSDP"))

    @property
    def active(self) -> bool:
        return self.accelerator is not None

    def device(self, configured: str) -> str:
        """The device of this process: its own GPU (accelerate's choice, cuda:LOCAL_RANK) under a launcher."""
        if not self.active or configured == "cpu":
            return configured
        return str(self.accelerator.device)

    def effective_batch(self, batch_size: int, gradient_accumulation: int) -> int:
        """Clips per optimizer step over all processes: batch x processes x accumulation."""
        return batch_size * self.world_size * gradient_accumulation

    def main_first(self, when: bool = True):
        """The main process runs the block first (it writes caches / builds files), then the others do."""
        if not (self.active and when):
            return contextlib.nullcontext()
        return self.accelerator.main_process_first()

    def share(self, positions: list[int]) -> list[int]:
        """This process's contiguous slice of a step's global positions (all slices the same size)."""
        if not self.active:
            return positions
        per_rank = len(positions) // self.world_size
        return positions[self.rank * per_rank : (self.rank + 1) * per_rank]

    def held_out_share(self, items: list) -> list:
        """The held-out clips this process evaluates: every N-th from its rank (shares may differ by one).

        Under FSDP every process runs every forward (the weights are gathered block by block), so each
        evaluates them all and `combine_held_out` averages the equal results.
        """
        if not self.active or self.fsdp:
            return items
        return items[self.rank :: self.world_size]

    def combine_held_out(self, sums: torch.Tensor) -> torch.Tensor:
        """The evaluation sums of every process's share, added up (on every process)."""
        if not self.active:
            return sums
        reduction = "mean" if self.fsdp else "sum"
        return self.accelerator.reduce(sums.to(self.accelerator.device, torch.float64), reduction=reduction).cpu()

    def average_step(
        self, parameters: list[torch.nn.Parameter], totals: torch.Tensor, aux_totals: dict[str, float]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Average the LoRA gradients and the step's losses over the processes, in one all-reduce.

        A parameter whose gradient is None on every process keeps None (the optimizer skips it, as
        with one process); elsewhere a missing gradient counts as zero.
        """
        if not self.active:
            return totals, aux_totals
        names = sorted(aux_totals)
        device = self.accelerator.device
        grads = [p.grad.detach().reshape(-1).float() if p.grad is not None else None for p in parameters]
        flat = torch.cat(
            [
                *(g.to(device) if g is not None else torch.zeros(p.numel(), device=device) for g, p in zip(grads, parameters)),
                totals.to(device, torch.float32),
                torch.tensor([aux_totals[n] for n in names], device=device, dtype=torch.float32),
                torch.tensor([float(g is not None) for g in grads], device=device),
            ]
        )
        summed = self.accelerator.reduce(flat, reduction="sum")
        grad_end = sum(p.numel() for p in parameters)
        totals_end = grad_end + len(totals)
        aux_end = totals_end + len(names)
        present = (summed[aux_end:] > 0).tolist()
        averaged = summed[:aux_end] / self.world_size
        offset = 0
        for parameter, has_grad in zip(parameters, present):
            count = parameter.numel()
            if has_grad:
                parameter.grad = averaged[offset : offset + count].view_as(parameter).to(parameter.device, parameter.dtype)
            offset += count
        return averaged[grad_end:totals_end].cpu(), dict(zip(names, averaged[totals_end:aux_end].tolist()))

    def start_equal(self, parameters: list[torch.nn.Parameter]) -> None:
        """Give every process the main process's LoRA weights (as DDP does when it wraps a model)."""
        if not self.active or not parameters:
            return
        from accelerate.utils import broadcast

        flat = torch.cat([p.detach().reshape(-1).float() for p in parameters]).to(self.accelerator.device)
        flat = broadcast(flat, from_process=0)
        offset = 0
        with torch.no_grad():
            for parameter in parameters:
                count = parameter.numel()
                parameter.copy_(flat[offset : offset + count].view_as(parameter))
                offset += count

    def any_process(self, flag: bool) -> bool:
        """True on every process when `flag` is true on any (Ctrl-C / SIGTERM reaching only some of them)."""
        if not self.active:
            return flag
        value = torch.tensor([float(flag)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    def check_same(self, value: int, what: str) -> None:
        """Stop every process with a TrainingError when they disagree on `value` (e.g. the resumed step)."""
        if not self.active:
            return
        values = self.accelerator.gather(torch.tensor([value], device=self.accelerator.device)).tolist()
        if len(set(values)) > 1:
            raise TrainingError(
                f"The processes disagree on the {what}: {values} (process 0 first). Every process must read the "
                "same training_folder: on several machines put it on storage they share."
            )

    def wait_for_everyone(self) -> None:
        if self.active:
            self.accelerator.wait_for_everyone()

    def end(self) -> None:
        """Leave the process group (at the end of the run, or after an error)."""
        if self.active:
            self.accelerator.end_training()  # destroys the process group

    def describe(self, tracer, logger, train) -> None:
        """Say once how the run is split: processes, this rank, the batch per process and per step."""
        effective = self.effective_batch(train.batch_size, train.gradient_accumulation)
        tracer.event(
            "data_parallel",
            processes=self.world_size,
            rank=self.rank,
            batch_size=train.batch_size,
            gradient_accumulation=train.gradient_accumulation,
            effective_batch=effective,
            backend=self.accelerator.state.backend if self.active else None,
        )
        if self.active:
            logger.info(
                "Data parallel over %d processes: %d clips per step (batch_size %d x %d processes x "
                "gradient_accumulation %d); the LR is used as configured (not scaled).",
                self.world_size, effective, train.batch_size, self.world_size, train.gradient_accumulation,
            )

    def progress_label(self, name: str, train) -> str:
        """The progress bar's label: the run's name, and with several processes the clips per step."""
        if not self.active:
            return name
        return f"{name} [{self.effective_batch(train.batch_size, train.gradient_accumulation)} clips/step, {self.world_size} processes]"
