"""LTX2Model's prompt phases: prompts to embeddings (Gemma, then LTX-2's text connectors), and freeing the text
encoder once every prompt is encoded (an object LTX2Model owns)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import torch

from toolkit.errors import ModelLoadError
from toolkit.models.model_inputs import PromptEmbeds
from toolkit.trace import get_tracer, memory_snapshot

from .placement import Placement


class PromptPhase:
    """get_prompt_embeds and unload_text_encoder on the model's tokenizer, text encoder and connectors."""

    def __init__(
        self,
        components: dict,
        placement: Placement,
        configured_max_length: int | None,
        dtype: torch.dtype,
        te_device: torch.device,
        device: torch.device,
    ):
        self.components = components
        self.placement = placement
        self.configured_max_length = configured_max_length  # model.max_sequence_length
        self.dtype = dtype
        self.te_device = te_device
        self.device = device
        # Set by load_model(defer_text_encoder=True): reads the text encoder when the first prompt needs it.
        self.load_text_encoder: Callable[[], torch.nn.Module] | None = None

    @property
    def max_sequence_length(self) -> int:
        tokenizer = self.components["tokenizer"]
        return int(self.configured_max_length or min(tokenizer.model_max_length, 1024))

    @property
    def text_encoder_loaded(self) -> bool:
        return self.components.get("text_encoder") is not None

    # -- get_prompt_embeds -------------------------------------------------
    @torch.no_grad()
    def get_prompt_embeds(self, prompts: list[str], keep_text_states: bool = False) -> PromptEmbeds:
        """Gemma 3 hidden states of every layer, then LTX-2's text connectors: embeddings for the video and the
        audio stream. With `keep_text_states` the stacked hidden states and their mask are kept for sampling
        (LTX2Pipeline runs the connectors itself)."""
        if "text_encoder" not in self.components and self.load_text_encoder is not None:
            self.components["text_encoder"] = self.load_text_encoder()
        if not self.text_encoder_loaded:
            raise ModelLoadError(
                "get_prompt_embeds: the text encoder was unloaded; prompts must be encoded (or cached) before "
                "train.unload_text_encoder frees it"
            )
        tokenizer = self.components["tokenizer"]
        max_length = self.max_sequence_length
        with self.placement.on_device("text_encoder", "connectors"), get_tracer().span(
            "get_prompt_embeds", batch=len(prompts), prompts=prompts, max_length=max_length
        ) as span:
            tokenizer.padding_side = "left"
            tokens = tokenizer(
                [p.strip() for p in prompts],
                padding="max_length",
                max_length=max_length,
                truncation=True,
                add_special_tokens=True,
                return_tensors="pt",
            )
            input_ids = tokens.input_ids.to(self.te_device)
            text_mask = tokens.attention_mask.to(self.te_device)
            outputs = self.components["text_encoder"](input_ids=input_ids, attention_mask=text_mask, output_hidden_states=True)
            text_states = torch.stack(outputs.hidden_states, dim=-1).flatten(2, 3).to(self.dtype)
            video_embeds, audio_embeds, connector_mask = self.components["connectors"](
                text_states, text_mask, padding_side="left"
            )
            embeds = PromptEmbeds(
                embeds={"video": video_embeds, "audio": audio_embeds},
                attention_mask=connector_mask,
                for_sampling={"text_states": text_states, "text_mask": text_mask} if keep_text_states else {},
            )
            span.set(
                lambda: {
                    "tokens_kept": text_mask.sum(dim=1).tolist(),
                    "truncated": [len(ids) > max_length for ids in tokenizer(prompts, verbose=False).input_ids],
                },
                text_states=text_states,
                video_embeds=video_embeds,
                audio_embeds=audio_embeds,
                attention_mask=connector_mask,
            )
        return embeds.to(self.device)

    def describe_tokens(self, text: str) -> dict:
        """What Gemma's tokenizer keeps of `text` at the model's maximum length (for --inspect)."""
        from toolkit.monitoring.inspection import token_summary

        return token_summary(self.components["tokenizer"], text, self.max_sequence_length)

    # -- unload_text_encoder -----------------------------------------------
    def unload_text_encoder(self) -> None:
        """Free the text encoder once every prompt it is needed for has been encoded."""
        with get_tracer().span(
            "unload_text_encoder", lambda: {"memory_before": memory_snapshot()}, encoders=["text_encoder"]
        ) as span:
            encoder = self.components.get("text_encoder")
            self.components["text_encoder"] = None  # a deferred encoder never read stays unread from now on
            if encoder is not None:
                encoder.to("cpu")
                left = weakref.ref(encoder)
                del encoder
                if left() is not None:
                    # Only a reference cycle keeps it: a full collection frees it. Skipped otherwise, since
                    # walking every object of a process with torch, diffusers and transformers loaded
                    # took longer than anything else between caching and the first step.
                    gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            span.set(lambda: {"memory_after": memory_snapshot()})
