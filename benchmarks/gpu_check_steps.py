"""The phases benchmarks/gpu_check.py runs and measures: the trainer's own paths, and a bare diffusers+peft loop.

- `load`: LTX2Model's streamed `loading.load_one` of the transformer (quantized block by block, the
  offloaded share kept on the host and the rest sent to the device as it arrives), the trainer's LoRA
  (`attach_network`), gradient checkpointing, then layer offloading (`offload_transformer`);
- `train`: optimizer steps as `SDTrainer.hook_train_loop` takes them: autocast, `get_noise_prediction`,
  the flow-matching loss of `sd_trainer.flow_matching`, backward, gradient clipping, the trainer's optimizer
  (`sd_trainer.optim.build_optimizer`: torch AdamW or bitsandbytes' 8-bit AdamW);
- `sample`: denoising steps (Euler, as the pipelines' flow-matching scheduler steps) through
  `get_noise_prediction` under no_grad: the transformer's part of sampling (the slice has no VAE);
- `bare_step_seconds`: the same step written with diffusers, optimum-quanto and peft alone.

`PhaseMeter` measures each phase: host memory as anonymous RSS above the baseline taken before loading
(memory_slice.MemorySampler), CUDA memory as `torch.cuda.max_memory_allocated` since the phase began.
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass, field

import torch

from benchmarks.memory_slice import MemorySampler, Scenario, cuda_peak, reset_cuda_peak

AUTOCAST_DTYPE = torch.bfloat16


@dataclass
class PhaseMemory:
    """One phase's measured peaks (bytes above the baseline; cuda None on the CPU) and its seconds."""

    host: int = 0
    host_rss: int = 0  # plain RSS: also file-backed and shared pages (CUDA's pinned buffers may count here)
    cuda: int | None = None
    seconds: float = 0.0


class PhaseMeter:
    """Peaks of host and CUDA memory per phase, against the host baseline taken when it is made."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            torch.zeros(1, device=device)  # the CUDA context belongs to the baseline, not to the first phase
        self.sampler = MemorySampler()
        self.baseline, self.baseline_rss = self.sampler.reset()

    @contextlib.contextmanager
    def phase(self):
        measured = PhaseMemory()
        self.sampler.reset()
        reset_cuda_peak(str(self.device))
        started = time.perf_counter()
        yield measured
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        measured.seconds = time.perf_counter() - started
        measured.host = self.sampler.peak_anon - self.baseline
        measured.host_rss = self.sampler.peak_rss - self.baseline_rss
        measured.cuda = cuda_peak(str(self.device)) if self.device.type == "cuda" else None

    def close(self) -> None:
        self.sampler.stop()


@dataclass
class SliceBatch:
    """Random latents and prompt embeds shaped for the slice's transformer (one clip)."""

    video: torch.Tensor  # (1, C, F, H, W)
    audio: torch.Tensor  # (1, C, L, M)
    video_embeds: torch.Tensor  # (1, S, caption channels)
    audio_embeds: torch.Tensor
    attention_mask: torch.Tensor
    sigmas: torch.Tensor = field(default_factory=lambda: torch.tensor([0.6]))
    fps: float = 24.0

    @classmethod
    def random(cls, transformer_config, frames: int, size: int, device: torch.device) -> SliceBatch:
        generator = torch.Generator().manual_seed(0)
        channels = transformer_config.in_channels
        audio_channels = 8 if transformer_config.audio_in_channels % 8 == 0 else 1
        mel_bins = transformer_config.audio_in_channels // audio_channels
        caption = transformer_config.caption_channels

        def noise(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator).to(device)

        return cls(
            video=noise(1, channels, frames, size, size),
            audio=noise(1, audio_channels, 4 * frames, mel_bins),
            video_embeds=noise(1, 16, caption),
            audio_embeds=noise(1, 16, caption),
            attention_mask=torch.ones(1, 16, dtype=torch.long, device=device),
            sigmas=torch.tensor([0.6], device=device),
        )

    def prompt(self):
        from toolkit.models.model_inputs import PromptEmbeds

        return PromptEmbeds({"video": self.video_embeds, "audio": self.audio_embeds}, self.attention_mask)


def load(model, rank: int, gradient_checkpointing: bool):
    """The transformer loaded, with its LoRA and its offloading, as SDTrainer loads it; returns the LoRA network."""
    from extensions_built_in.diffusion_models.ltx2 import loading
    from toolkit.config import NetworkConfig
    from toolkit.network.attach import attach_network

    model.components["transformer"] = loading.load_one(model, "transformer")
    network = attach_network(
        model.transformer, NetworkConfig(linear=rank, linear_alpha=rank), seed=0, default_targets=model.lora_target_pattern()
    )
    if gradient_checkpointing:
        model.transformer.enable_gradient_checkpointing()
    model.transformer.train()
    model.offload_transformer()
    return network


def optimizer_for(network, optimizer_name: str):
    """The trainer's optimizer over the LoRA's parameters (a ConfigError when its package is missing)."""
    from extensions_built_in.sd_trainer.optim import build_optimizer
    from toolkit.config.train import TrainConfig

    return build_optimizer(network.parameters(), TrainConfig(optimizer=optimizer_name, lr=1e-4))


def train_step_seconds(model, network, optimizer, batch: SliceBatch, steps: int) -> list[float]:
    """Seconds of each of `steps` optimizer steps, after one untimed step (kernels, allocator, optimizer state)."""
    from extensions_built_in.sd_trainer.flow_matching import add_noise, masked_loss, velocity_target

    device = model.device
    parameters = list(network.parameters())
    prompt = batch.prompt()
    video_noise, audio_noise = torch.randn_like(batch.video), torch.randn_like(batch.audio)
    noisy_video = add_noise(batch.video, video_noise, batch.sigmas)
    noisy_audio = add_noise(batch.audio, audio_noise, batch.sigmas)
    video_target, audio_target = velocity_target(batch.video, video_noise), velocity_target(batch.audio, audio_noise)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=AUTOCAST_DTYPE):
            prediction = model.get_noise_prediction(noisy_video, noisy_audio, batch.sigmas, prompt, fps=batch.fps)
        loss = masked_loss(prediction.video, video_target) + masked_loss(prediction.audio, audio_target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            raise RuntimeError(f"the training step's loss is {loss.item()} on {device}")
        _synchronize(device)
        if step:
            times.append(time.perf_counter() - started)
    return times


@torch.no_grad()
def sample(model, batch: SliceBatch, steps: int) -> torch.Tensor:
    """`steps` Euler steps from noise to a clean video latent through the LoRA'd transformer; the latent."""
    device = model.device
    prompt = batch.prompt()
    video, audio = torch.randn_like(batch.video), torch.randn_like(batch.audio)
    sigmas = torch.linspace(1.0, 0.0, steps + 1, device=device)
    model.transformer.eval()
    try:
        for current, following in zip(sigmas[:-1], sigmas[1:]):
            with torch.autocast(device.type, dtype=AUTOCAST_DTYPE):
                velocity = model.get_noise_prediction(video, audio, current.reshape(1), prompt, fps=batch.fps)
            video = video + (following - current) * velocity.video
            audio = audio + (following - current) * velocity.audio
    finally:
        model.transformer.train()
    if not torch.isfinite(video).all():
        raise RuntimeError(f"sampling on {device} gave a latent that is not finite")
    return video


def bare_step_seconds(folder, scenario: Scenario, batch: SliceBatch, steps: int, device: torch.device,
                      gradient_checkpointing: bool) -> list[float]:
    """The same optimizer step with diffusers + optimum-quanto + peft alone: no offloading, no streaming."""
    import diffusers
    from optimum import quanto
    from peft import LoraConfig

    from extensions_built_in.diffusion_models.ltx2.lora_names import LTX2_LORA_TARGETS
    from extensions_built_in.diffusion_models.ltx2.quantization_excludes import LTX2_TRANSFORMER_EXCLUDE

    transformer = diffusers.LTX2VideoTransformer3DModel.from_pretrained(
        folder / "transformer", torch_dtype=torch.bfloat16
    ).requires_grad_(False)
    if scenario.qtype:
        quanto.quantize(transformer, weights=getattr(quanto, scenario.qtype), exclude=list(LTX2_TRANSFORMER_EXCLUDE))
        quanto.freeze(transformer)
    transformer.to(device)
    transformer.add_adapter(LoraConfig(r=scenario.lora_rank, lora_alpha=scenario.lora_rank, target_modules=LTX2_LORA_TARGETS))
    if gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    parameters = [parameter for parameter in transformer.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    batch_size, channels, frames, height, width = batch.video.shape
    video_tokens = batch.video.permute(0, 2, 3, 4, 1).reshape(batch_size, -1, channels)
    audio_tokens = batch.audio.permute(0, 2, 1, 3).flatten(2)
    video_target, audio_target = torch.randn_like(video_tokens), torch.randn_like(audio_tokens)
    t = batch.sigmas * 1000
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=AUTOCAST_DTYPE):
            video_prediction, audio_prediction = transformer(
                hidden_states=video_tokens.to(torch.bfloat16),
                audio_hidden_states=audio_tokens.to(torch.bfloat16),
                encoder_hidden_states=batch.video_embeds.to(torch.bfloat16),
                audio_encoder_hidden_states=batch.audio_embeds.to(torch.bfloat16),
                timestep=t, audio_timestep=t, sigma=t, audio_sigma=t, use_cross_timestep=True,
                encoder_attention_mask=batch.attention_mask, audio_encoder_attention_mask=batch.attention_mask,
                num_frames=frames, height=height, width=width, fps=batch.fps, audio_num_frames=batch.audio.shape[2],
                return_dict=False,
            )
        loss = (video_prediction.float() - video_target).square().mean() + (audio_prediction.float() - audio_target).square().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _synchronize(device)
        if step:
            times.append(time.perf_counter() - started)
    del transformer, optimizer, parameters
    release(device)
    return times


def release(device: torch.device) -> None:
    """Give back what the last phase freed, so that the next one starts from the same place."""
    from toolkit.memory_management.streamed_loading import release_freed_host_memory

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    release_freed_host_memory()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
