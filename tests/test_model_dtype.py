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
