"""Turning a row into model inputs: prompt tokens carry no loss, the response and its EOS do."""

import logging

from .prompts import build_prompt

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


def encode_row(row: dict, tokenizer, max_length: int, template: str = "alpaca") -> dict:
    """input_ids and labels for one row: [prompt][response][EOS], labels -100 on the prompt.

    Prompt and response are tokenized separately so the loss mask matches the text exactly.
    Over max_length, the response is cut at the end (as the paper's code does); a prompt so long
    that no response token would remain is cut at its start instead, so every sample keeps
    response tokens to score.
    """
    prompt_ids = tokenizer(build_prompt(row, template), add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(prompt_ids) + len(response_ids) > max_length:
        keep_response = min(len(response_ids), max(max_length - len(prompt_ids), max_length // 4))
        response_ids = response_ids[:keep_response]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - keep_response) :]
    return {
        "id": row["id"],
        "input_ids": prompt_ids + response_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
    }


def encode_rows(rows, tokenizer, max_length: int, template: str = "alpaca") -> list[dict]:
    return [encode_row(r, tokenizer, max_length, template) for r in rows]


def ensure_pad_token(tokenizer) -> None:
    """Tokenizers without a pad token pad with EOS; labels are built explicitly, so EOS stays supervised."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
