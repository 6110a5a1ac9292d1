"""A pretrained base model is copied in its checkpoint's own dtype and on the CPU: a bfloat16 checkpoint
is never upcast to float32 (twice the disk and RAM) and no GPU is used just to save it."""

import json
import struct

import torch

from lpselect import models, stages


def safetensors_dtypes(path) -> set:
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return {info["dtype"] for name, info in header.items() if name != "__metadata__"}


def test_a_bf16_checkpoint_stays_bf16_and_the_same_size(tmp_path, tiny_tokenizer, monkeypatch):
    model = models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, tiny_tokenizer, 0)
    models.save_model(model.to(torch.bfloat16), tiny_tokenizer, tmp_path / "checkpoint")
    # as on a GPU host: the copy must stay on the CPU all the same
    monkeypatch.setattr(models, "default_device", lambda: torch.device("cuda", 0))
    stages.prepare_model({"source": "pretrained", "path": str(tmp_path / "checkpoint")}, 0, tmp_path / "copy")

    original, copy = tmp_path / "checkpoint/model.safetensors", tmp_path / "copy/model.safetensors"
    assert safetensors_dtypes(copy) == safetensors_dtypes(original) == {"BF16"}
    assert copy.stat().st_size == original.stat().st_size
    assert json.loads((tmp_path / "copy/config.json").read_text())["dtype"] == "bfloat16"
    loaded, _ = models.load_model(tmp_path / "copy", dtype=models.CHECKPOINT_DTYPE, device="cpu")
    assert loaded.dtype == torch.bfloat16
    assert models.load_model(tmp_path / "copy", device="cpu")[0].dtype == torch.float32  # what training loads


RANK = """
import json, sys, torch
from lpselect import models

def rss(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) * 1024

torch.set_num_threads(1)
from transformers import LlamaForCausalLM  # the model code too (models imports it only when a model is made)
models.load_tokenizer(sys.argv[1])  # imports and tokenizer first: only the weights are measured
anon, file = rss("RssAnon:"), rss("RssFile:")
model = models.read_checkpoint(sys.argv[1])
for p in model.parameters():  # touch every weight: mapped pages count in RSS once read
    p.sum()
print(json.dumps({"anon": rss("RssAnon:") - anon, "file": rss("RssFile:") - file,
                  "dtype": str(model.dtype)}))
upcast = {k: v.to(torch.float32) for k, v in model.state_dict().items()}  # what load_model does on a GPU
direct = models.load_model(sys.argv[1], device="cpu")[0].state_dict()  # a float32 load
assert upcast.keys() == direct.keys() and all(torch.equal(upcast[k], direct[k]) for k in direct)
"""


def test_two_ranks_read_an_fp16_checkpoint_as_shared_pages_and_upcast_it_exactly(tmp_path, tiny_tokenizer):
    """What each rank of a multi-GPU extraction does with an fp16 hub checkpoint (results/models/<m>
    keeps the hub's dtype): read it in its own dtype, which leaves the weights as mmapped file pages
    (no anonymous memory: 2 ranks on one host share them), then upcast; the upcast weights equal a
    float32 load bit for bit. On a GPU load_model upcasts after moving the model there, so the host
    never holds a float32 copy; on this CPU-only host the upcast itself is not measured (it would
    need the float32 size in host memory wherever it ran)."""
    import subprocess
    import sys

    from conftest import ROOT

    model = models.build_fresh_model({"hidden_size": 512, "num_layers": 6, "num_heads": 8}, tiny_tokenizer, 0)
    models.save_model(model.to(torch.float16), tiny_tokenizer, tmp_path / "fp16")
    fp32_bytes = 4 * models.count_parameters(model)  # 25M parameters: 101 MB as float32
    procs = [subprocess.Popen([sys.executable, "-c", RANK, str(tmp_path / "fp16")], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        rank = json.loads(out)
        assert rank["dtype"] == "torch.float16"
        assert rank["anon"] < 0.1 * fp32_bytes, rank  # was the whole float32 size (+100%) when read as float32
        assert rank["file"] > 0.4 * fp32_bytes, rank  # the fp16 weights (half the float32 size), mapped
