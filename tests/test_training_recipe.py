"""One training recipe at every model size: a global batch whatever the GPU count, bf16 that really
runs in bfloat16 on the response-only loss, and gradient checkpointing that changes nothing but memory."""

import copy
import json
import logging

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from conftest import ROOT
from lpselect import schema, study, synthetic, training, validation
from lpselect.models import build_fresh_model
from lpselect.tokenization import encode_rows
from lpselect.training import accumulation_steps, build_trainer, training_arguments

HP = {"epochs": 1, "learning_rate": 1e-2, "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
      "batch_size": 4, "global_batch_size": 4, "logging_steps": 1}


def paper_config() -> dict:
    return yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())


def test_paper_config_trains_every_model_with_the_same_global_batch():
    config = paper_config()
    validation.validate_config(config)
    hp, seen = config["training"], set()
    for name in config["grid"]["proxies"] + config["grid"]["targets"]:
        processes = max(1, study.size_resources(config, name, "train")["gpus"])
        seen.add(processes)
        assert hp["batch_size"] * processes * accumulation_steps(hp, processes) == 128
    assert seen == {1, 2, 4}  # the grid really spans GPU counts
    assert hp["bf16"] and hp["tf32"] and hp["gradient_checkpointing"]


def test_a_global_batch_that_does_not_divide_is_rejected_before_any_job():
    config = paper_config()
    config["training"]["global_batch_size"] = 24  # 24 = 4 x 6 and 8 x 3, but not a multiple of 4 x 4 GPUs
    with pytest.raises(schema.ConfigError, match=r"training\.global_batch_size.*'opt-6\.7b' \(4 GPUs"):
        validation.validate_config(config)
    del config["training"]["global_batch_size"]
    with pytest.raises(schema.ConfigError, match=r"training\.global_batch_size is missing"):
        validation.validate_config(config)


def test_accumulation_is_derived_from_the_world_size(tmp_path, monkeypatch):
    hp = {**HP, "batch_size": 4, "global_batch_size": 128}
    assert [accumulation_steps(hp, n) for n in (1, 2, 4)] == [32, 16, 8]
    with pytest.raises(ValueError, match=r"training\.global_batch_size \(128\).*training\.batch_size \(4\) x 3"):
        accumulation_steps(hp, 3)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert training_arguments(hp, tmp_path, 0).gradient_accumulation_steps == 32


def test_tf32_is_ignored_and_logged_without_an_ampere_gpu(tmp_path, caplog):
    if torch.cuda.is_available():
        pytest.skip("a CUDA host may honour tf32")
    with caplog.at_level(logging.INFO, logger="lpselect.training"):
        args = training_arguments({**HP, "tf32": True}, tmp_path, 0)
    assert not args.tf32 and "training.tf32 ignored" in caplog.text


@pytest.fixture(scope="module")
def examples(tiny_tokenizer):
    return encode_rows(synthetic.generate(2, 2, 1), tiny_tokenizer, 512)[:8]


def fresh(tokenizer, layers=1):
    return build_fresh_model({"hidden_size": 16, "num_layers": layers, "num_heads": 2}, tokenizer, 0)


@pytest.mark.parametrize("response_loss", [True, False])
@pytest.mark.parametrize("bf16", [True, False])
def test_training_matmuls_run_in_the_configured_precision(tiny_tokenizer, examples, tmp_path, bf16, response_loss):
    """Output dtypes of every Linear during real Trainer steps: bfloat16 with bf16, float32 without,
    for the response-only loss (single process) and the stock loss (the DDP/FSDP path)."""
    model = fresh(tiny_tokenizer)
    dtypes = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    trainer = build_trainer(model, tiny_tokenizer, examples, {**HP, "bf16": bf16}, tmp_path, 0,
                            response_loss=response_loss, checkpoints=False)
    trainer.train()
    assert dtypes == {torch.bfloat16 if bf16 else torch.float32}
    assert next(model.parameters()).dtype == torch.float32  # master weights stay float32


class GradientsBeforeStep(TrainerCallback):
    """The gradients of the first optimizer step."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_tokenizer, examples, tmp_path):
    base = fresh(tiny_tokenizer, layers=2)
    runs = {}
    for checkpointing in (False, True):
        model, grads, calls = copy.deepcopy(base), GradientsBeforeStep(), []
        model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda *_: calls.append(1))
        trainer = build_trainer(model, tiny_tokenizer, examples, {**HP, "gradient_checkpointing": checkpointing},
                                tmp_path / str(checkpointing), 0, callbacks=[grads], checkpoints=False)
        assert type(trainer).__name__ == "ResponseLossTrainer"
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        runs[checkpointing] = losses, grads.grads, len(calls)
    (plain_loss, plain_grads, plain_calls), (ckpt_loss, ckpt_grads, ckpt_calls) = runs[False], runs[True]
    assert ckpt_calls == 2 * plain_calls  # the layer really ran again in the backward pass
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-6)
    for name, grad in plain_grads.items():
        assert grad.abs().sum() > 0 or "embed" in name
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-5, atol=1e-7)


def test_fsdp_is_fsdp2_checkpoints_in_shards_and_accumulates_sharded():
    """FSDP2 pinned and passed as fsdp=True (the option string is deprecated), the paper's knobs
    (study.training_knobs: sync_each_batch, collective_timeout_s from the schema's defaults) applied."""
    knobs = study.training_knobs(paper_config(), "opt-13b")
    options = training.fsdp_options(HP | knobs | {"fsdp": "full_shard auto_wrap"})
    assert options["fsdp"] is True and options["ddp_timeout"] == 7200
    assert options["fsdp_config"] == {"version": 2, "cpu_ram_efficient_loading": True, "reshard_after_forward": True,
                                      "state_dict_type": "SHARDED_STATE_DICT", "activation_checkpointing": True}
    assert options["accelerator_config"] == {"gradient_accumulation_kwargs": {"sync_each_batch": True}}
    unsynced = training.fsdp_options(HP | knobs | {"fsdp": "shard_grad_op", "sync_each_batch": False})
    assert "accelerator_config" not in unsynced and unsynced["fsdp_config"]["reshard_after_forward"] is False
    assert training.fsdp_options(HP) == {}  # plain DDP: the Trainer's own checkpointing stays
    with pytest.raises(ValueError, match=r"training\.fsdp: unknown option 'hybrid_shard'"):
        training.fsdp_options(HP | knobs | {"fsdp": "hybrid_shard"})


def test_gradient_checkpointing_can_be_set_per_model_size():
    config = paper_config()
    config["resources"]["by_model_size"][-1]["gradient_checkpointing"] = False
    validation.validate_config(config)
    small, large = config["grid"]["proxies"][0], config["grid"]["targets"][-1]
    assert study.training_knobs(config, small)["gradient_checkpointing"] is True  # training.* default
    assert study.training_knobs(config, large)["gradient_checkpointing"] is False  # its size row
    assert study.training_knobs(config, small)["batch_size"] == config["training"]["batch_size"]


def test_result_neutral_training_knobs_are_not_result_settings():
    """Gradient checkpointing (same gradients), the per-device batch under a fixed global batch (same
    samples per step) and logging change no result: they stay out of the training rules' params (and
    the resume fingerprint, which is built from those params)."""
    config = paper_config()
    settings = study.result_settings(config, "training")
    neutral = {"gradient_checkpointing", "batch_size", "logging_steps", "sync_each_batch", "collective_timeout_s"}
    assert not neutral & set(settings)
    assert settings["global_batch_size"] == 128 and settings["learning_rate"] == config["training"]["learning_rate"]
    del config["training"]["gradient_checkpointing"]  # the schema's default reaches the trainer
    assert study.training_knobs(config, config["grid"]["proxies"][0])["gradient_checkpointing"] is False


def test_a_proxy_read_at_epoch_one_stops_there_on_its_full_schedule(tiny_tokenizer, examples, tmp_path):
    hp = HP | {"epochs": 3, "lr_scheduler": "linear"}
    one = training.train(fresh(tiny_tokenizer), tiny_tokenizer, examples, hp, tmp_path / "one", 0, epochs_to_keep=[1])
    three = training.train(fresh(tiny_tokenizer), tiny_tokenizer, examples, hp, tmp_path / "three", 0,
                           epochs_to_keep=[1, 3])
    log_one = json.loads((tmp_path / "one" / "train_log.json").read_text())
    assert max(h.get("epoch", 0) for h in log_one) == pytest.approx(1.0)
    first = load_file(one[1] / "model.safetensors")
    same = load_file(three[1] / "model.safetensors")  # epoch 1 of the 3-epoch run: the same schedule
    assert all(torch.equal(first[k], same[k]) for k in first)
