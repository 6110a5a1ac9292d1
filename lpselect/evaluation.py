"""Predictions of a trained target on held-out rows: response loss and greedy generations."""

import logging

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .losses import per_sample_losses
from .prompts import build_prompt
from .tokenization import encode_rows

log = logging.getLogger(__name__)

EXTRA_COLUMNS = ("task", "difficulty")


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> list[str]:
    """Greedy continuations, batched in length order with left padding."""
    tokenizer.padding_side = "left"
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    order = np.argsort([len(e) for e in encoded], kind="stable")
    outputs = [""] * len(prompts)
    for start in tqdm(range(0, len(order), batch_size), desc="generate", mininterval=5):
        idx = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(model.device)
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, texts):
            outputs[i] = text
    tokenizer.padding_side = "right"
    return outputs


def predict(model, tokenizer, rows: list[dict], cfg: dict, template: str = "alpaca") -> pd.DataFrame:
    """Per held-out row: response loss and perplexity, and (if configured) the greedy generation."""
    examples = encode_rows(rows, tokenizer, cfg["max_length"], template)
    frame = per_sample_losses(model, examples, cfg["batch_size"], tokenizer.pad_token_id, desc="held-out loss")
    for col in EXTRA_COLUMNS:
        if col in rows[0]:
            frame[col] = [r[col] for r in rows]
    if cfg["generate"]:
        prompts = [build_prompt(r, template) for r in rows]
        frame["generation"] = greedy_generate(model, tokenizer, prompts, cfg["batch_size"], cfg["max_new_tokens"])
        frame["exact_match"] = [
            int(g.strip() == r["output"].strip()) for g, r in zip(frame["generation"], rows)
        ]
    return frame
