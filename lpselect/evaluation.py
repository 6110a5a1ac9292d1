"""Predictions of a trained target on held-out rows: response loss and greedy generations."""

import logging
import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .losses import per_sample_losses
from .tokenization import encode_prompt, encode_rows, end_of_turn_ids

log = logging.getLogger(__name__)

EXTRA_COLUMNS = ("task", "difficulty")


# tokenizers that name no limit report int(1e30) as their model_max_length
NO_LIMIT = 10**9


def context_length(model, tokenizer) -> int | None:
    """How many positions the model can attend to: its config's max_position_embeddings (OPT's learned
    positions index past it with an error) and the tokenizer's model_max_length where that names a limit."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [n for n in limits if n and n < NO_LIMIT]
    return min(limits) if limits else None


@torch.inference_mode()
def greedy_generate(
    model, tokenizer, rows: list[dict], batch_size: int, max_new_tokens: int, template: str = "alpaca",
    stats: dict | None = None,
) -> list[str]:
    """Greedy continuations of the rows' prompts, batched in length order with left padding. A prompt
    too long for itself and max_new_tokens to fit the model's context is cut inside its text, as in
    training (tokenization.encode_prompt), so its template and "### Response:" survive. With a chat
    template the prompt is the template's opening of an assistant turn and generation stops at EOS or
    the template's end-of-turn marker. `stats`, if given, receives what decoding cost: prompt tokens,
    decoding steps (batches x new positions) and seconds, which the cost plan's `--measured` reads
    from the evaluate ledger."""
    context = context_length(model, tokenizer)
    budget = None if context is None else context - max_new_tokens
    encoded = [encode_prompt(r, tokenizer, budget, template) for r in rows]
    too_long = [r["id"] for r, (ids, _) in zip(rows, encoded) if budget is not None and len(ids) > budget]
    if too_long:
        raise ValueError(f"the bare prompt template and max_new_tokens {max_new_tokens} do not fit the model's "
                         f"{context}-token context (rows {too_long[:5]})")
    log.info("%d of %d prompts cut to fit %s new tokens in a %s-token context",
             sum(cut for _, cut in encoded), len(rows), max_new_tokens, context)
    encoded = [ids for ids, _ in encoded]
    stop = end_of_turn_ids(tokenizer, template)
    tokenizer.padding_side = "left"
    order = np.argsort([len(e) for e in encoded], kind="stable")
    outputs = [""] * len(rows)
    steps, positions, start_time = 0, 0, time.perf_counter()
    for start in tqdm(range(0, len(order), batch_size), desc="generate", mininterval=5):
        idx = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(model.device)
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop,
        )
        steps += generated.shape[1] - batch["input_ids"].shape[1]
        positions += (generated.shape[1] - batch["input_ids"].shape[1]) * len(idx)
        texts = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, texts):
            outputs[i] = text
    tokenizer.padding_side = "right"
    if stats is not None:
        stats.update(prompt_tokens=sum(map(len, encoded)), decode_steps=int(steps), decode_tokens=int(positions),
                     decode_s=round(time.perf_counter() - start_time, 3))
    return outputs


def weights_dtype(cfg: dict):
    """The dtype a model is evaluated in: bfloat16 with evaluation.bf16 (a 13B model on one GPU)."""
    return torch.bfloat16 if cfg.get("bf16", False) else torch.float32


def predict(model, tokenizer, rows: list[dict], cfg: dict, template: str = "alpaca",
            stats: dict | None = None) -> pd.DataFrame:
    """Per held-out row: response loss and perplexity, and (if configured) the greedy generation;
    `stats` as greedy_generate's, plus the tokens of the loss pass."""
    examples = encode_rows(rows, tokenizer, cfg["max_length"], template)
    frame = per_sample_losses(model, examples, cfg["batch_size"], tokenizer.pad_token_id, desc="held-out loss")
    if stats is not None:
        stats["loss_tokens"] = sum(len(e["input_ids"]) for e in examples)
    for col in EXTRA_COLUMNS:
        if col in rows[0]:
            frame[col] = [r[col] for r in rows]
    if cfg["generate"]:
        frame["generation"] = greedy_generate(model, tokenizer, rows, cfg["batch_size"], cfg["max_new_tokens"], template,
                                              stats)
        frame["exact_match"] = [
            int(g.strip() == r["output"].strip()) for g, r in zip(frame["generation"], rows)
        ]
    return frame
