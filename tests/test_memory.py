"""Memory per job (lpselect/memory.py): hand-computed budgets, and the check of resources.by_model_size
on configs/paper.yaml and on an undersized row (the config alone, no dry run)."""

import copy

import pytest
import yaml

from conftest import ROOT
from lpselect import memory, validation

GIB = 2**30
N = 13e9
# a 13B-class decoder: 40 layers, h 5120, vocabulary 32000, 4096 positions (Llama-2-13B's config.json)
S13 = memory.Shape(N, 40, 5120, 5120, 32000, 4096)


def paper() -> dict:
    return yaml.safe_load((ROOT / "configs/paper.yaml").read_text())


def test_13b_fsdp_budget_with_and_without_sync_each_batch():
    # 4 ranks, accumulation 8, per-device batch 4 x 512 tokens, gradient checkpointing
    synced = memory.train_budget(S13, 4, True, True, 8, 4, 512, True)
    layer = (N - 32000 * 5120) / 40
    assert synced["weights"] == 4 * N / 4 and synced["gradients"] == 4 * N / 4 and synced["optimizer"] == 8 * N / 4
    assert synced["gathered bf16 parameters"] == 2 * (2 * layer + 32000 * 5120)
    tokens = 4 * 512
    assert synced["activations"] == 40 * 4 * 5120 * tokens + 34 * 5120 * tokens
    assert synced["logits"] == 10 * 32000 * tokens
    assert "unsharded accumulation gradients" not in synced
    # 16 B/parameter over 4 ranks = 48.43 GiB (the review's figure) + gathered 1.50 + activations 1.89
    # + logits 0.61 = 52.43 GiB
    assert 16 * N / 4 / GIB == pytest.approx(48.43, abs=0.01)
    assert sum(synced.values()) / GIB == pytest.approx(52.43, abs=0.01)
    # without sync_each_batch the no_sync micro-batches hold bf16 gradients of the whole model (2N),
    # which replace the sharded float32 ones (4N / 4): + 12.1 GiB
    unsynced = memory.train_budget(S13, 4, True, False, 8, 4, 512, True)
    assert unsynced["unsharded accumulation gradients"] == 2 * N - N
    assert (sum(unsynced.values()) - sum(synced.values())) / GIB == pytest.approx(12.11, abs=0.01)
    # no accumulation, nothing to keep unsharded
    assert "unsharded accumulation gradients" not in memory.train_budget(S13, 4, True, False, 1, 32, 512, True)


def test_one_gpu_and_ddp_budgets_hold_whole_copies():
    small = memory.Shape(1e9, 24, 2048, 2048, 50272, 2048)
    one = memory.train_budget(small, 1, True, True, 32, 4, 512, False)
    assert one["weights"] + one["gradients"] + one["optimizer"] == 16e9
    assert one["bf16 weight copies"] == 2e9  # autocast keeps every layer's copy for the backward
    assert one["activations"] == 24 * 34 * 2048 * 4 * 512
    ddp = memory.train_budget(small, 2, False, True, 16, 4, 512, True)
    assert ddp["DDP gradient buckets"] == 4e9 and ddp["weights"] == 4e9


def test_extraction_and_generation_budgets():
    ext = memory.extract_budget(S13, "fp32", 16384)
    assert ext["weights"] == 4 * N and "bf16 weight copies" not in ext
    assert ext["activations"] == (12 * 4 + 4) * 5120 * 16384  # one layer's float32 states + the hidden states
    assert memory.extract_budget(S13, "bf16", 16384)["bf16 weight copies"] == 2 * N
    # Llama-2-13B in bf16, batch 16, prompts cut at 4096 - 512: KV 0.78 MiB per token (2 x 40 x 5120 x 2 B)
    gen = memory.generate_budget(S13, True, 16, 3584, 512)
    kv_token = 2 * 40 * 5120 * 2
    assert kv_token / 2**20 == pytest.approx(0.78, abs=0.01)
    assert gen["weights"] == 2 * N
    assert gen["KV cache and prefill"] == max(16 * 3584 * (kv_token + 12 * 5120 * 2), 16 * 4096 * kv_token)
    assert sum(gen.values()) / GIB == pytest.approx(74.5, abs=0.1)


def test_host_ram_of_training_extraction_and_generation():
    # 13B on 4 ranks, 3 GiB each: training reads the fp16 base's pages once and every rank a float32 copy
    overhead = 3 * GIB
    assert memory.host_bytes("train", N, 4, 2 * N, overhead) == 2 * N + 4 * (overhead + 4 * N)
    assert memory.host_bytes("extract", N, 4, 4 * N, overhead) == 4 * N + 4 * overhead
    assert memory.host_bytes("generate", N, 1, 4 * N, overhead) == 4 * N + overhead + 2 * N


def test_paper_yaml_passes_its_own_check():
    config = validation.load_config(ROOT / "configs/paper.yaml")
    found = memory.needs(config, ROOT / "no-results")
    assert memory.problems(found, config) == []
    jobs = {(x.model, x.job): x for x in found}
    assert len(jobs) == 7 * 3
    # the 13B jobs need the 80 GB cards their row states; the 1-2 GPU rows fit any A100
    assert jobs["llama2-13b", "generate"].gpu_bytes > 40 * GIB and jobs["llama2-13b", "generate"].gpus == 1
    assert jobs["opt-13b", "train"].gpu_limit == (80 - 2) * GIB
    assert jobs["opt-2.7b", "train"].gpu_limit == (40 - 2) * GIB
    assert "Every GPU job fits its row." in memory.render(found, config)


def test_an_undersized_row_is_flagged_naming_the_row_and_the_model(tmp_path, capsys):
    config = paper()
    rows = config["resources"]["by_model_size"]
    rows[2]["gpu_memory_gb"] = 40  # 13B on 40 GB cards
    rows[2]["extract"]["mem_mb"] = 32000
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    assert memory.main([str(path), "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert ("resources.by_model_size[2] (max_parameters 1.5e+10): llama2-13b train needs 52.4 GiB per GPU, more "
            "than the 38.0 GiB usable (gpu_memory_gb less plan.gpu_memory_reserve_gb)") in out
    # 4 x 1.29e10 B of mmapped float32 pages + 4 ranks x 3 GiB = 61,498 MiB
    assert "opt-13b extract needs 61,498 MB of host RAM, more than its extract.mem_mb 32,000" in out
    flagged = out.split("- **does not fit", 1)[1]
    assert "opt-6.7b train" not in flagged and "llama2-7b train" not in flagged  # 7B FSDP training fits 40 GB
    # the same row with the paper's cards and memory passes
    assert memory.problems(memory.needs(validation.load_config(ROOT / "configs/paper.yaml"), tmp_path),
                           validation.load_config(ROOT / "configs/paper.yaml")) == []


def test_shapes_come_from_the_prepared_model_then_known_ids_then_an_estimate(tmp_path):
    config = paper()
    (tmp_path / "models" / "opt-13b").mkdir(parents=True)
    (tmp_path / "models" / "opt-13b" / "config.json").write_text(
        '{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100, '
        '"max_position_embeddings": 128}')
    got = memory.shape(config, "opt-13b", N, tmp_path)
    assert (got.layers, got.hidden, got.kv_width, got.vocab) == (2, 64, 64, 100)
    assert memory.shape(config, "llama2-13b", N, tmp_path).context == 4096
    odd = copy.deepcopy(config)
    odd["models"]["llama2-13b"]["path"] = "someone/else-13b"
    guess = memory.shape(odd, "llama2-13b", N, tmp_path)
    assert (guess.layers, guess.hidden) == (40, 5120)  # (13e9 / (12 x 128^2))^(1/3) = 40.4



def test_the_check_reads_training_sync_each_batch():
    # the key and its default (true) are the schema's (training.sync_each_batch); a config may turn it off
    config = validation.load_config(ROOT / "configs/paper.yaml")
    synced = {(x.model, x.job): x.gpu_bytes for x in memory.needs(config, ROOT / "no-results")}
    config["training"]["sync_each_batch"] = False
    validation.validate_config(config)
    unsynced = {(x.model, x.job): x.gpu_bytes for x in memory.needs(config, ROOT / "no-results")}
    n = config["models"]["llama2-13b"]["parameters"]
    assert unsynced["llama2-13b", "train"] - synced["llama2-13b", "train"] == pytest.approx(2 * n - 4 * n / 4)
    assert unsynced["opt-1.3b", "train"] == synced["opt-1.3b", "train"]  # one GPU: no FSDP, nothing unsharded
    assert "sync_each_batch false" in memory.render(memory.needs(config, ROOT / "no-results"), config)


def test_the_longest_prompt_is_measured_once_the_rows_and_the_model_are_prepared(tmp_path, tiny_tokenizer):
    from lpselect.fileio import write_jsonl

    config = paper()
    config["evaluation"].pop("eval_sets")  # the held-out split only
    config["grid"]["datasets"] = ["alpaca"]
    s = memory.shape(config, "opt-350m", 3.31e8, tmp_path)
    bound, why = memory.longest_prompt(config, "opt-350m", s, tmp_path)
    assert bound == 2048 - 512 and "upper bound" in why
    write_jsonl(tmp_path / "datasets/alpaca/test.jsonl",
                [{"id": "a", "instruction": "Say hi.", "input": "", "output": "hi"},
                 {"id": "b", "instruction": "Repeat: " + "word " * 40, "input": "", "output": "ok"}])
    folder = tmp_path / "models/opt-350m"
    tiny_tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text('{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, '
                                        '"vocab_size": 320, "max_position_embeddings": 1024}')
    from lpselect.evaluation import encode_prompt

    row = {"id": "b", "instruction": "Repeat: " + "word " * 40, "input": "", "output": "ok"}
    expected = len(encode_prompt(row, tiny_tokenizer, 1024 - 512, "alpaca")[0])
    s = memory.shape(config, "opt-350m", 3.31e8, tmp_path)
    measured = (expected, "measured on the prepared evaluation rows")
    assert memory.longest_prompt(config, "opt-350m", s, tmp_path) == measured
    assert 20 < expected < 512
