"""Padding-free training (training.padding_free): flattened batches keep every sample apart, on every
architecture the project trains (Llama: fresh models and SmolLM2; Gemma 3; OPT, the paper grid), and
train exactly as padded batches do: same samples in the same order, same per-step losses, same weights."""

import copy
import json
import logging

import pytest
import torch
import transformers
import yaml
from transformers import AttentionInterface, Gemma3ForCausalLM, Gemma3TextConfig, OPTConfig, OPTForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from conftest import ROOT, SHARED
from lpselect import data, models, packing, study
from lpselect.losses import response_token_nll
from lpselect.tokenization import encode_rows
from lpselect.training import build_trainer

ALPACA = SHARED / "data" / "alpaca-42598.jsonl"
pytestmark = pytest.mark.skipif(not ALPACA.exists(), reason=f"needs {ALPACA} (../shared is absent)")

HP = {"epochs": 2, "learning_rate": 1e-2, "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
      "batch_size": 4, "global_batch_size": 8, "logging_steps": 1, "sampling": "random"}


@pytest.fixture(scope="module")
def rows():
    return data.take_slice(data.load_local_rows(ALPACA, "alpaca", drop_empty=True), limit=12)


@pytest.fixture(scope="module")
def tokenizer(rows):
    return models.train_tokenizer(rows, vocab_size=400)  # a real BPE on the rows: real length spread


@pytest.fixture(scope="module")
def examples(rows, tokenizer):
    examples = encode_rows(rows, tokenizer, 256)  # the training encoding (template, response labels, EOS)
    lengths = sorted(len(e["input_ids"]) for e in examples)
    assert lengths[0] < lengths[-1] / 2  # padded batches would really pad
    return examples


def fresh(arch: str, tokenizer, attention: str = "sdpa"):
    """A small random decoder of an architecture the project trains, in float32, without dropout."""
    torch.manual_seed(0)
    small = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "pad_token_id": tokenizer.pad_token_id}
    if arch == "llama":  # fresh models, SmolLM2 and Llama-2
        model = models.build_fresh_model({"hidden_size": 32, "num_layers": 2, "num_heads": 4}, tokenizer, 0)
    elif arch == "gemma3":  # gemma-3-270m: sliding-window and full layers; a window shorter than the samples
        model = Gemma3ForCausalLM(Gemma3TextConfig(**small, intermediate_size=64, num_key_value_heads=2, head_dim=8,
                                                   sliding_window=16, layer_types=["sliding_attention", "full_attention"]))
    else:  # OPT: learned positions, a mask built without the position ids
        model = OPTForCausalLM(OPTConfig(**small, ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=512,
                                         dropout=0.0, attention_dropout=0.0))
    model.config._attn_implementation = attention
    return model


def isolation_error(model, examples, collator=None, **decoder_options) -> float:
    """Largest difference between the logits of each sample in a flattened forward and those of its
    own unpadded forward (float32)."""
    collator = collator or packing.FlattenedBatches()
    batch = collator([{k: e[k] for k in ("input_ids", "labels")} for e in examples])
    inputs = {k: v for k, v in batch.items() if k != "labels"} | {"use_cache": False} | decoder_options
    with torch.no_grad():
        flat = model(**inputs).logits[0]
        alone = [model(input_ids=torch.tensor([e["input_ids"]]), use_cache=False).logits[0] for e in examples]
    parts = flat.split([len(e["input_ids"]) for e in examples])
    return max((p - a).abs().max().item() for p, a in zip(parts, alone))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch, mode", [("llama", "position_ids"), ("gemma3", "position_ids"), ("opt", "mask")])
def test_a_flattened_forward_gives_each_sample_its_own_logits(tokenizer, examples, arch, mode, attention):
    model = fresh(arch, tokenizer, attention).eval()
    assert packing.packing_mode(model) == mode
    collator = packing.flattening_collator(model)
    assert isolation_error(model, examples[:4], collator) < 1e-5
    # the project's response-only loss on the flattened row: each sample's token losses, as alone
    batch = collator([{k: e[k] for k in ("input_ids", "labels")} for e in examples[:4]])
    with torch.no_grad():
        flat, _ = response_token_nll(model, batch)
        alone = [response_token_nll(model, {"input_ids": torch.tensor([e["input_ids"]]),
                                            "labels": torch.tensor([e["labels"]])})[0] for e in examples[:4]]
    torch.testing.assert_close(flat, torch.cat(alone), rtol=1e-5, atol=1e-6)


def test_the_cache_and_mask_traps_are_caught(tokenizer, examples):
    """What the check guards against: with a padding mask or a cache, or OPT without the explicit mask,
    the flattened samples attend to each other and nothing fails on its own."""
    llama = fresh("llama", tokenizer).eval()
    ones = torch.ones(1, sum(len(e["input_ids"]) for e in examples[:4]), dtype=torch.long)
    assert isolation_error(llama, examples[:4], attention_mask=ones) > 1e-2
    assert isolation_error(llama, examples[:4], use_cache=True) > 1e-2
    assert isolation_error(fresh("opt", tokenizer).eval(), examples[:4]) > 1e-2  # position ids alone


def test_a_model_that_cannot_keep_samples_apart_trains_padded(tokenizer, examples, tmp_path, caplog):
    """An attention kernel that only knows plain causal attention (a custom one registered with
    transformers, as serving backends do) ignores every mask: flattening is refused, in the log."""
    def causal_only(module, query, key, value, attention_mask, **kwargs):
        return sdpa_attention_forward(module, query, key, value, None, is_causal=True, **kwargs)

    AttentionInterface.register("causal_only", causal_only)
    model = fresh("llama", tokenizer, "causal_only")
    assert packing.packing_mode(model) is None
    with caplog.at_level(logging.INFO, logger="lpselect.packing"):
        trainer = build_trainer(model, tokenizer, examples, HP | {"padding_free": True}, tmp_path, 0,
                                checkpoints=False)
    assert isinstance(trainer.data_collator, transformers.DataCollatorForSeq2Seq)
    assert "attend to each other; training on padded batches instead" in caplog.text


class SamplesSeen:
    """The token ids of every sample the training forwards see, padded or flattened."""

    def __init__(self, model):
        self.samples, self.positions = [], None
        model.get_input_embeddings().register_forward_pre_hook(self.record)

    def record(self, module, args):
        ids = args[0]
        if self.positions is not None:  # flattened: split where the position ids restart
            starts = (self.positions[0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
            self.samples += [tuple(ids[0, a:b].tolist()) for a, b in zip(starts, starts[1:])]
        else:
            self.samples += [tuple(row) for row in ids.tolist()]


def run(model, tokenizer, examples, hp, out):
    trainer = build_trainer(model, tokenizer, examples, hp, out, 0, checkpoints=False)
    seen = SamplesSeen(model)
    pad = tokenizer.pad_token_id
    original = trainer.compute_loss

    def compute_loss(model, inputs, *args, **kwargs):  # the batch's position ids, to split flattened rows
        seen.positions = inputs.get("position_ids")
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = compute_loss
    trainer.train()
    # padded rows: cut each at its real length (pads sit right; the pad id is not in any sample)
    samples = [s[: len(s) - next((i for i, t in enumerate(reversed(s)) if t != pad), 0)] for s in seen.samples]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return trainer, samples, losses


@pytest.mark.parametrize("arch, sampling, checkpointing", [
    ("llama", "random", False), ("llama", "group_by_length", True), ("gemma3", "random", False),
    ("opt", "random", True),
])
def test_padded_and_flattened_training_agree(tokenizer, examples, tmp_path, arch, sampling, checkpointing):
    """Same seed, same real rows: the same samples in the same order, per-step losses and the final
    weights (all of them together) within 1e-5 relative, with the length-grouped sampler and gradient
    checkpointing too."""
    base = fresh(arch, tokenizer)
    hp = HP | {"sampling": sampling, "gradient_checkpointing": checkpointing}
    runs = {}
    for free in (False, True):
        model = copy.deepcopy(base)
        trainer, samples, losses = run(model, tokenizer, examples, hp | {"padding_free": free}, tmp_path / str(free))
        is_flat = isinstance(trainer.data_collator, packing.FlattenedBatches)
        assert is_flat == free
        runs[free] = samples, losses, {n: p.detach() for n, p in model.named_parameters()}
    (padded_samples, padded_losses, padded_w), (flat_samples, flat_losses, flat_w) = runs[False], runs[True]
    assert flat_samples == padded_samples and len(flat_samples) == HP["epochs"] * len(examples)
    assert sorted(flat_samples[: len(examples)]) == sorted(tuple(e["input_ids"]) for e in examples)
    assert len(flat_losses) == 4 and flat_losses == pytest.approx(padded_losses, rel=1e-5)
    before = base.state_dict()
    assert all(not torch.equal(w, before[name]) for name, w in padded_w.items())  # every tensor trained
    padded_all, flat_all = (torch.cat([w[n].flatten() for n in padded_w]) for w in (padded_w, flat_w))
    assert (flat_all - padded_all).norm() <= 1e-5 * padded_all.norm()
    # per tensor within 1e-4 (Adam turns rounding noise in small gradients into lr-sized steps), and the
    # attention key biases absolutely: softmax ignores them, so their gradient is rounding noise alone
    for name, w in padded_w.items():
        diff = flat_w[name] - w
        assert diff.abs().max() <= 1e-5 if "k_proj.bias" in name else diff.norm() <= 1e-4 * w.norm(), name


def test_padding_free_is_a_result_neutral_knob_on_by_default():
    config = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    assert "padding_free" not in study.result_settings(config, "training")
    assert study.training_knobs(config, config["grid"]["proxies"][0])["padding_free"] is True  # the schema's default


def test_two_ranks_agree_on_flattening_and_train_as_padded(tmp_path, capfd):
    """Data-parallel training (torchrun, 2 ranks over gloo): rank 0 probes, every rank flattens
    (said in each rank's log), and the loss curve is the padded one."""
    from lpselect import stages, synthetic
    from lpselect.fileio import write_jsonl

    rows = synthetic.generate(4, 2, 5)
    write_jsonl(tmp_path / "rows.jsonl", rows)
    tok = models.train_tokenizer(rows, 320)
    models.save_model(models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tok, 0), tok,
                      tmp_path / "base")
    stages.tokenize(tmp_path / "base", tmp_path / "rows.jsonl", 512, "alpaca", tmp_path / "tokenized")
    curves = {}
    for free in (False, True):
        out = tmp_path / str(free)
        stages.train_model(tmp_path / "base", tmp_path / "tokenized", None, HP | {"epochs": 2}, 42, {2: out / "model"},
                           out / "state", out / "train.json", processes=2, knobs={"padding_free": free})
        curves[free] = [h["loss"] for h in json.loads((out / "model" / "train_log.json").read_text()) if "loss" in h]
        log = capfd.readouterr().err
        assert log.count("flattened batches for LlamaForCausalLM") == (2 if free else 0)
    assert len(curves[True]) > 2 and curves[True] == pytest.approx(curves[False], rel=1e-5)
