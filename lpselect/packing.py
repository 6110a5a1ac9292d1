"""Padding-free training batches (`training.padding_free`): the samples of a per-device batch are
concatenated into one row with position ids restarting per sample (transformers'
DataCollatorWithFlattening), so no token-FLOP goes to padding. Same samples per step in the same order
(the sampler is unchanged) and the same loss (mean over the step's response tokens), hence the same
gradients up to float rounding.

Samples stay apart only if the attention sees the sample boundaries. transformers builds that
block-diagonal mask from the position ids only when no attention mask is passed and no cache is built;
otherwise every sample silently attends to the ones before it. Some decoders never hand the position ids
to their mask (OPT in transformers 5.24): for them the collator adds the block-diagonal mask itself,
built by transformers' create_causal_mask for the model's attention implementation. Which of the two a
model needs is not assumed but measured (packing_mode): a flattened forward must give each sample the
hidden states of its own forward; a model for which neither holds trains on padded batches, said in the log.
"""

import logging

import torch
from transformers import DataCollatorWithFlattening
from transformers.masking_utils import create_causal_mask

log = logging.getLogger(__name__)

# Two short samples of arbitrary token ids; the second must come out of the flattened forward as it does alone.
PROBE = ([3, 4, 5, 6, 7], [8, 9, 10, 11])
# Relative difference of the hidden states below which the samples count as kept apart: float rounding
# (TF32 matmuls included) stays far below it; attending to another sample changes them by tens of percent.
PROBE_TOLERANCE = 1e-2


def packed_mask(config, position_ids: torch.Tensor):
    """The block-diagonal causal mask of a flattened row, in the form the config's attention
    implementation takes (None for a single sample, which the plain causal mask covers)."""
    shape_only = torch.empty((*position_ids.shape, 1), device=position_ids.device)
    return create_causal_mask(config=config, inputs_embeds=shape_only, attention_mask=None, cache=None,
                              position_ids=position_ids)


def flat_inputs(samples, config=None) -> dict:
    """One row of `samples` (lists of token ids) with restarting position ids, as the collator builds
    it; with `config`, the explicit block-diagonal mask too."""
    ids = torch.tensor([[t for s in samples for t in s]])
    positions = torch.tensor([[i for s in samples for i in range(len(s))]])
    inputs = {"input_ids": ids, "position_ids": positions}
    mask = packed_mask(config, positions) if config is not None else None
    return inputs | ({"attention_mask": mask} if mask is not None else {})


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


@torch.no_grad()
def packing_mode(model) -> str | None:
    """How this model keeps the samples of a flattened row apart: "position_ids" (its own mask from the
    position ids), "mask" (only with the explicit block-diagonal mask), or None (neither: pad instead).
    Measured on the model itself in eval mode (no dropout), with use_cache=False as in training."""
    decoder, was_training = model.get_decoder(), model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        alone = [decoder(input_ids=torch.tensor([s], device=device), use_cache=False).last_hidden_state[0]
                 for s in PROBE]
        for mode, config in (("position_ids", None), ("mask", model.config)):
            inputs = {k: v.to(device) for k, v in flat_inputs(PROBE, config).items()}
            if config is not None and "attention_mask" not in inputs:
                break  # an attention without a mask of transformers' making: nothing to add
            flat = decoder(**inputs, use_cache=False).last_hidden_state[0]
            parts = flat.split([len(s) for s in PROBE])
            if max(_relative_difference(p, a) for p, a in zip(parts, alone)) < PROBE_TOLERANCE:
                return mode
        return None
    finally:
        model.train(was_training)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def agreed(value):
    """Rank 0's value on every rank (under FSDP's rank-0 loading only rank 0 holds weights to probe)."""
    if _distributed():
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]
    return value


class FlattenedBatches(DataCollatorWithFlattening):
    """DataCollatorWithFlattening (input_ids, labels with -100 at each sample's first position,
    restarting position_ids; no attention mask), plus the explicit block-diagonal mask when `config`
    is given (models whose own mask ignores the position ids)."""

    def __init__(self, config=None):
        super().__init__()
        self.config = config

    def __call__(self, features, return_tensors=None, separator_id=None):
        batch = super().__call__(features, return_tensors, separator_id)
        if self.config is not None:
            mask = packed_mask(self.config, batch["position_ids"])
            if mask is not None:
                batch["attention_mask"] = mask
        return batch


def flattening_collator(model):
    """The flattening collator this model keeps samples apart with, or None (logged) when it cannot."""
    mode = agreed(packing_mode(model) if not _distributed() or torch.distributed.get_rank() == 0 else None)
    name = type(model).__name__
    if mode is None:
        log.warning("training.padding_free: %s lets the samples of a flattened batch attend to each other; "
                    "training on padded batches instead", name)
        return None
    log.info("training.padding_free: flattened batches for %s (samples kept apart by %s)", name,
             "its position ids" if mode == "position_ids" else "an explicit block-diagonal mask")
    return FlattenedBatches(model.config if mode == "mask" else None)
