import math

import numpy as np
import pytest
import torch

from lpselect.losses import batch_token_losses, length_sorted_batches, pad_batch, per_sample_losses
from lpselect.models import build_fresh_model
from lpselect.training import build_trainer
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
    enc = encode_row(LONG, tiny_tokenizer, 104)  # the prompt alone is 111 tokens (see also test_truncation.py)
    response = tiny_tokenizer(LONG["output"], add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert len(enc["input_ids"]) <= 104 and len(response) < 104 // 4
    assert enc["labels"][-len(response) :] == response  # a response under a quarter of the window stays whole


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


def test_a_sample_without_response_tokens_gets_nan_not_perplexity_one(tiny_model, tiny_tokenizer):
    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG)]
    examples[1] |= {"labels": [IGNORE_INDEX] * len(examples[1]["labels"]), "truncated": True}
    frame = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=tiny_tokenizer.pad_token_id)
    assert frame["n_tokens"].tolist()[1] == 0 and frame.loc[1, ["loss", "perplexity"]].isna().all()
    assert frame.loc[0, "n_tokens"] > 0 and np.isfinite(frame.loc[0, "perplexity"])
    assert frame["truncated"].tolist() == [False, True]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_diverged_model_stops_the_extraction(tiny_tokenizer, value):
    model = build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tiny_tokenizer, 0).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight[:, 0] = value
    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG)]
    with pytest.raises(ValueError, match=r"epoch-1: non-finite .* 2 samples .*\['r1', 'r2'\]"):
        per_sample_losses(model, examples, batch_size=2, pad_id=tiny_tokenizer.pad_token_id, desc="proxy/epoch-1")


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


def test_token_budget_batches_cover_every_sample_once_within_budget():
    lengths = [5, 40, 3, 12, 12, 7, 100, 1, 64, 9]
    fixed = length_sorted_batches(lengths, batch_size=3)
    assert [len(b) for b in fixed] == [3, 3, 3, 1]
    budget = length_sorted_batches(lengths, batch_size=3, max_tokens=64)
    assert sorted(np.concatenate(budget).tolist()) == list(range(len(lengths)))
    for batch in budget:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 64
    assert [len(b) for b in budget] == [5, 2, 1, 1, 1]  # short samples share a batch; 100 > budget goes alone
    assert [list(b) for b in budget] == [list(b) for b in length_sorted_batches(lengths, 3, max_tokens=64)]


def test_token_budget_and_bf16_give_the_same_values(tiny_model, tiny_tokenizer):
    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG, NO_INPUT)] * 3
    pad = tiny_tokenizer.pad_token_id
    fixed = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad)
    budget = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad, max_tokens=200)
    assert np.allclose(budget["loss"], fixed["loss"], rtol=1e-5)
    bf16 = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad, precision="bf16")
    assert list(bf16["id"]) == list(fixed["id"])
    assert np.allclose(bf16["loss"], fixed["loss"], rtol=2e-2)
    assert not np.array_equal(bf16["loss"], fixed["loss"])  # bf16 really ran


def test_response_loss_trainer_matches_the_stock_trainer(tiny_tokenizer, tmp_path):
    """Same seed and data: the response-position loss gives the stock Trainer's loss curve and weights."""
    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG, NO_INPUT)] * 4
    hp = {"epochs": 2, "learning_rate": 1e-2, "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
          "batch_size": 4, "global_batch_size": 8, "logging_steps": 1}
    runs = {}
    for response_loss in (False, True):
        model = build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tiny_tokenizer, 0)
        trainer = build_trainer(model, tiny_tokenizer, examples, hp, tmp_path / str(response_loss), 0,
                                response_loss=response_loss)
        assert type(trainer).__name__ == ("ResponseLossTrainer" if response_loss else "Trainer")
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        runs[response_loss] = (losses, torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert len(runs[True][0]) == 4  # 3 batches of 4 per epoch, 2 per step
    assert np.allclose(runs[True][0], runs[False][0], rtol=1e-5)
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-5)


def test_chunked_cross_entropy_gives_the_same_values(tiny_model, tiny_tokenizer, monkeypatch):
    from lpselect import losses

    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG, NO_INPUT)]
    whole = per_sample_losses(tiny_model, examples, batch_size=3, pad_id=tiny_tokenizer.pad_token_id)
    monkeypatch.setattr(losses, "LOGITS_CHUNK_ELEMENTS", 3 * tiny_model.config.vocab_size)  # 3 positions a chunk
    chunked = per_sample_losses(tiny_model, examples, batch_size=3, pad_id=tiny_tokenizer.pad_token_id)
    assert whole["n_tokens"].sum() > 9
    assert np.allclose(chunked["loss"], whole["loss"], rtol=1e-6)


def template_examples(tokenizer, n=24):
    """Rows with and without an input, so both Alpaca templates occur, in mixed order; no two
    instructions start alike, so the templates are the only prefixes they share."""
    words = "apple bring cross drive every fold grow hold iron jump keep lift move name open pull quit rest sort turn use view wash yell"
    rows = [
        {"id": f"t{i}", "instruction": f"{word.capitalize()} {i} times.", "input": "" if i % 3 == 0 else f"{i} {word}",
         "output": " ".join([word] * (1 + i % 5))}
        for i, word in enumerate(words.split()[:n])
    ]
    return [encode_row(r, tokenizer, 512) for r in rows]


def test_template_groups_separate_the_two_alpaca_templates(tiny_tokenizer):
    from lpselect.losses import template_groups

    examples = template_examples(tiny_tokenizer)
    groups = template_groups(examples, min_count=4)
    has_input = np.array([i % 3 != 0 for i in range(len(examples))])
    assert set(groups) == {0, 1}
    assert len(set(groups[has_input])) == 1 and len(set(groups[~has_input])) == 1
    assert template_groups(examples, min_count=len(examples) + 1).tolist() == [-1] * len(examples)


def test_shared_prefix_stops_before_the_first_predicted_position(tiny_tokenizer):
    from lpselect.losses import prompt_end, shared_prefix_length

    same = encode_row(ROW, tiny_tokenizer, 512)
    batch = pad_batch([same, same], tiny_tokenizer.pad_token_id)
    assert shared_prefix_length(batch) == prompt_end(same) - 1
    different = pad_batch([same, encode_row(NO_INPUT, tiny_tokenizer, 512)], tiny_tokenizer.pad_token_id)
    assert 0 < shared_prefix_length(different) < prompt_end(same) - 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sharing_the_template_prefix_gives_the_same_values(tiny_model, tiny_tokenizer, precision, monkeypatch):
    from lpselect import losses

    examples = template_examples(tiny_tokenizer)
    pad = tiny_tokenizer.pad_token_id
    shared_tokens = []
    real = losses.shared_prefix_length
    monkeypatch.setattr(losses, "shared_prefix_length", lambda b: shared_tokens.append(real(b)) or shared_tokens[-1])
    plain = per_sample_losses(tiny_model, examples, batch_size=4, pad_id=pad, precision=precision, share_prefix=False)
    shared = per_sample_losses(tiny_model, examples, batch_size=4, pad_id=pad, precision=precision, share_prefix=True)
    assert min(shared_tokens) >= 10  # every batch ran its template once
    assert list(shared["id"]) == list(plain["id"]) and list(shared["n_tokens"]) == list(plain["n_tokens"])
    assert np.allclose(shared["loss"], plain["loss"], rtol=1e-5 if precision == "fp32" else 1e-2)


def test_prefix_sharing_with_sliding_window_attention(tiny_tokenizer):
    """Gemma-3 mixes sliding-window and full attention layers; a window shorter than the samples must
    see the same tokens whether the prefix came from the cache or not."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, sliding_window=6,
        layer_types=["sliding_attention", "full_attention"], pad_token_id=tiny_tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    examples = template_examples(tiny_tokenizer, 12)
    pad = tiny_tokenizer.pad_token_id
    plain = per_sample_losses(model, examples, batch_size=4, pad_id=pad, share_prefix=False)
    shared = per_sample_losses(model, examples, batch_size=4, pad_id=pad, share_prefix=True)
    assert np.allclose(shared["loss"], plain["loss"], rtol=1e-5)


def test_extraction_precision_is_a_named_result_setting(tiny_model, tiny_tokenizer, caplog):
    from lpselect import losses, schema, study, validation

    examples = [encode_row(r, tiny_tokenizer, 512) for r in (ROW, LONG, NO_INPUT)]
    pad = tiny_tokenizer.pad_token_id
    fp32 = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad)
    # TF32 is a CUDA matmul mode: on the CPU the values are float32's, and the log says so
    with caplog.at_level("INFO", logger="lpselect.losses"):
        tf32 = per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad, precision="tf32")
    assert np.array_equal(tf32["loss"], fp32["loss"], equal_nan=True)
    assert "extraction.precision tf32 has no effect on cpu" in caplog.text
    # on a CUDA device it switches cuBLAS float32 matmuls to TF32 for the pass, and back after
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with losses.matmul_precision(torch.device("cuda"), "tf32"):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    with pytest.raises(ValueError, match="extraction.precision 'fp16'"):
        per_sample_losses(tiny_model, examples, batch_size=2, pad_id=pad, precision="fp16")
    # the config's setting reaches the extractor, and it is in the extraction rules' params
    config = {"extraction": {"batch_size": 4, "precision": "bf16"}}
    assert losses.extraction_options(config["extraction"])["precision"] == "bf16"
    assert study.result_settings(config, "extraction") == {"precision": "bf16"}


def test_the_old_extraction_bf16_key_names_its_replacement():
    import yaml

    from conftest import ROOT
    from lpselect import schema, study, validation

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["extraction"]["bf16"] = True
    with pytest.raises(schema.ConfigError,
                       match=r"extraction.bf16: replaced by extraction.precision .*`precision: bf16`"):
        validation.validate_config(config)
    del config["extraction"]["bf16"]
    config["extraction"]["precision"] = "fp16"
    with pytest.raises(schema.ConfigError, match="extraction.precision"):
        validation.validate_config(config)
