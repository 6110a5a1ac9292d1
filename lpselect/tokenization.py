"""Turning a row into model inputs: prompt tokens carry no loss, the response and its EOS do."""

import logging

from .prompts import prompt_format

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


def _longest_fitting(encode, n: int, budget: int) -> list[int] | None:
    """encode(k) for the largest k <= n found whose ids number at most `budget`, or None when not even
    encode(0) fits. Binary search on k: token counts grow with the characters kept, and where they
    locally do not, a slightly shorter cut is kept (every returned encoding was checked)."""
    best = encode(0)
    if len(best) > budget:
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        ids = encode(mid)
        if len(ids) <= budget:
            lo, best = mid, ids
        else:
            hi = mid - 1
    return best


def encode_prompt(row: dict, tokenizer, max_tokens: int | None = None, template: str = "alpaca") -> tuple[list, bool]:
    """The prompt's token ids (with the tokenizer's BOS, if it adds one) and whether they were cut.

    Over `max_tokens`, the prompt is cut inside the row's text, never at its start, so BOS, the
    template and "### Response:" survive: the input is shortened from its end first (its beginning
    is usually what the instruction refers to), then the instruction. The row keeps its template
    variant even when its input is cut to nothing. When even the bare template is over `max_tokens`,
    the bare template is returned: callers decide what to do with the excess.
    """
    fmt = prompt_format(row, template)
    instruction, text = row["instruction"], row.get("input", "")

    def encode(instruction, text):
        return tokenizer(fmt.format(instruction=instruction, input=text), add_special_tokens=True)["input_ids"]

    ids = encode(instruction, text)
    if max_tokens is None or len(ids) <= max_tokens:
        return ids, False
    fitted = _longest_fitting(lambda k: encode(instruction, text[:k]), len(text), max_tokens)
    if fitted is None:
        fitted = _longest_fitting(lambda k: encode(instruction[:k], ""), len(instruction), max_tokens)
    return (encode("", "") if fitted is None else fitted), True


def encode_row(row: dict, tokenizer, max_length: int, template: str = "alpaca") -> dict:
    """input_ids and labels for one row: [prompt][response][EOS], labels -100 on the prompt, and
    `truncated` (whether the prompt or the response was cut to fit max_length).

    Prompt and response are tokenized separately so the loss mask matches the text exactly (the
    paper's code tokenizes them jointly; with SentencePiece the response then starts without its
    word-boundary mark). Over max_length, the response keeps at least a quarter of the window (all
    of it when shorter) and is cut at its end, as in the paper's code; the prompt gets the rest and
    is cut inside its text (encode_prompt). Only when the bare template does not leave that quarter
    does the response get less, possibly nothing: such a sample has no token to score.
    """
    prompt_ids, _ = encode_prompt(row, tokenizer, None, template)
    response_ids = tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    truncated = len(prompt_ids) + len(response_ids) > max_length
    if truncated:
        keep_response = min(len(response_ids), max(max_length - len(prompt_ids), max_length // 4))
        if len(prompt_ids) > max_length - keep_response:
            prompt_ids, _ = encode_prompt(row, tokenizer, max_length - keep_response, template)
        if len(prompt_ids) > max_length:
            raise ValueError(f"max_length {max_length} is shorter than the bare prompt template ({len(prompt_ids)} tokens)")
        # a prompt cut at character granularity may leave the response a few more tokens than it was promised
        response_ids = response_ids[: max_length - len(prompt_ids)]
    return {
        "id": row["id"],
        "input_ids": prompt_ids + response_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
        "truncated": truncated,
    }


def encode_rows(rows, tokenizer, max_length: int, template: str = "alpaca") -> list[dict]:
    examples = [encode_row(r, tokenizer, max_length, template) for r in rows]
    unscorable = sum(all(label == IGNORE_INDEX for label in e["labels"]) for e in examples)
    log.info(
        "%d of %d rows truncated to %d tokens (tokenizer %s), %d left without a response token",
        sum(e["truncated"] for e in examples), len(examples), max_length, tokenizer.name_or_path or "in memory", unscorable,
    )
    return examples


def ensure_pad_token(tokenizer) -> None:
    """Tokenizers without a pad token pad with EOS; labels are built explicitly, so EOS stays supervised."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts its BOS in front of what it encodes (Llama, gemma) rather than only
    defining one (the fresh tokenizer's <s>, SmolLM2's <|im_start|>)."""
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def response_only(examples: list[dict], tokenizer) -> list[dict]:
    """The same samples without their prompt, for IFD's second pass: exactly the response tokens
    encode_row scored (truncation included, EOS included), so both passes score the same tokens,
    after the model's BOS only where the tokenizer adds one to the prompted pass too (a token the model
    never sees at the start of an input would inflate the first loss). Without it the first response
    token has no context and is not scored, as in Superfiltering's response-alone pass."""
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    out = []
    for e in examples:
        response = [label for label in e["labels"] if label != IGNORE_INDEX]
        labels = [IGNORE_INDEX] * len(bos) + response
        out.append({"id": e["id"], "input_ids": bos + response, "labels": labels, "truncated": e["truncated"]})
    return out


_without_prompts = response_only  # for extraction_examples, whose flag has this name


# --- the tokenized training split: built once per (dataset, tokenizer), read by every job -----------------

COLUMNS = ("id", "input_ids", "labels", "truncated")


def save_examples(examples: list[dict], out_dir) -> None:
    """encode_rows' examples as a Hugging Face dataset folder (Dataset.save_to_disk), in their order.
    Written beside out_dir and moved into place, so a failed job leaves no partial folder."""
    import shutil
    from pathlib import Path

    from datasets import Dataset, Features, List, Value

    features = Features({"id": Value("string"), "input_ids": List(Value("int32")), "labels": List(Value("int32")),
                         "truncated": Value("bool")})
    dataset = Dataset.from_dict({c: [e[c] for e in examples] for c in COLUMNS}, features=features)
    out_dir = Path(out_dir)
    partial = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    dataset.save_to_disk(str(partial))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)


def load_examples(path, ids=None) -> list[dict]:
    """The examples save_examples wrote, as encode_rows returned them; with `ids`, only those samples,
    still in the dataset's (the rows') order. An id the dataset lacks is an error. Reads the memory-mapped
    folder without writing to it (no cache files)."""
    from datasets import load_from_disk

    dataset = load_from_disk(str(path))
    if ids is not None:
        keep, all_ids = set(ids), list(dataset["id"])
        indices = [i for i, sample_id in enumerate(all_ids) if sample_id in keep]
        if len(indices) != len(keep):
            missing = sorted(keep - {all_ids[i] for i in indices})
            raise ValueError(f"{path}: {len(missing)} selected ids are not in the tokenized rows, e.g. {missing[:3]}")
        columns = dataset[indices]
    else:
        columns = dataset[:]
    return [dict(zip(COLUMNS, values)) for values in zip(*(columns[c] for c in COLUMNS))]


def training_examples(tokenized_dir, subset_path=None) -> list[dict]:
    """The tokenized training split, or the subset's samples of it in the split's order."""
    import json
    from pathlib import Path

    ids = json.loads(Path(subset_path).read_text())["ids"] if subset_path else None
    examples = load_examples(tokenized_dir, ids)
    log.info("training on %d rows", len(examples))
    return examples


def extraction_examples(tokenized_dir, tokenizer, response_only: bool = False) -> list[dict]:
    """The tokenized training split; with `response_only`, the same response tokens without their
    prompt (IFD's second pass)."""
    examples = load_examples(tokenized_dir)
    return _without_prompts(examples, tokenizer) if response_only else examples
