import math

import pytest
import torch

from lpselect.losses import batch_token_losses, pad_batch, per_sample_losses
from lpselect.tokenization import IGNORE_INDEX, encode_row

ROW = {"id": "r1", "instruction": "Reverse the letters of the word.", "input": "abc", "output": "cba"}
LONG = {"id": "r2", "instruction": "Add the two numbers.", "input": "1234 + 5678", "output": "6912 and more words"}
NO_INPUT = {"id": "r3", "instruction": "Sort the digits 3 1 2 in ascending order.", "input": "", "output": "1 2 3"}


def test_prompt_tokens_carry_no_loss_and_eos_does(tiny_tokenizer):
    enc = encode_row(ROW, tiny_tokenizer, 512)
    response = tiny_tokenizer(ROW["output"], add_special_tokens=False)["input_ids"]
    n_prompt = len(enc["input_ids"]) - len(response) - 1
    assert enc["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert enc["labels"][n_prompt:] == response + [tiny_tokenizer.eos_token_id]
    assert enc["input_ids"][-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(enc["input_ids"][:n_prompt]).endswith("### Response:")


def test_no_input_rows_use_the_no_input_template(tiny_tokenizer):
    text = tiny_tokenizer.decode(encode_row(NO_INPUT, tiny_tokenizer, 512)["input_ids"])
    assert "### Input:" not in text and "### Instruction:" in text


def test_truncation_keeps_response_tokens(tiny_tokenizer):
    enc = encode_row(LONG, tiny_tokenizer, 16)
    assert len(enc["input_ids"]) == 16
    assert sum(label != IGNORE_INDEX for label in enc["labels"]) >= 4


def test_perplexity_matches_hand_computation(tiny_model, tiny_tokenizer):
    enc = encode_row(ROW, tiny_tokenizer, 512)
    frame = per_sample_losses(tiny_model, [enc], batch_size=1, pad_id=tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logits = tiny_model(torch.tensor([enc["input_ids"]])).logits[0]
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    nll = [
        -log_probs[t - 1, enc["input_ids"][t]].item()
        for t in range(1, len(enc["input_ids"]))
        if enc["labels"][t] != IGNORE_INDEX
    ]
    assert frame.loc[0, "n_tokens"] == len(nll)
    assert frame.loc[0, "perplexity"] == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-5)


def test_value_does_not_depend_on_batch_neighbours(tiny_model, tiny_tokenizer):
    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG, NO_INPUT)]
    alone = per_sample_losses(tiny_model, examples[:1], batch_size=1, pad_id=tiny_tokenizer.pad_token_id)
    batched = per_sample_losses(tiny_model, examples, batch_size=3, pad_id=tiny_tokenizer.pad_token_id)
    assert len(examples[1]["input_ids"]) > len(examples[0]["input_ids"])  # the sample is padded in the batch
    assert batched.loc[0, "loss"] == pytest.approx(alone.loc[0, "loss"], abs=1e-5)
    assert batched["id"].tolist() == ["r1", "r2", "r3"]


def test_batch_losses_count_only_response_tokens(tiny_model, tiny_tokenizer):
    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG)]
    _, counts = batch_token_losses(tiny_model, pad_batch(examples, tiny_tokenizer.pad_token_id))
    assert counts.tolist() == [sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in examples]
