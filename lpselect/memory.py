"""Memory per job: a per-rank GPU budget and the host RAM of every job that trains or runs a model, and
the check of `resources.by_model_size` against them (printed by `make plan`, or alone):

    python -m lpselect.memory configs/paper.yaml        (no dry run: the config alone, a second)

GPU budget per rank (bytes; N parameters, W ranks, L layers, h hidden size, V vocabulary):
- training (fp32 master weights, Adam; bf16 autocast or FSDP2's bf16 MixedPrecisionPolicy): weights
  4N, gradients 4N, Adam moments 8N, each / W under FSDP (sharded), whole on one GPU or under DDP (which
  also keeps a 4N gradient bucket copy); under FSDP2 with gradient accumulation and without
  training.sync_each_batch every micro-batch but the last keeps *unsharded* bf16 gradients of the whole
  model, 2N (measured on CPU: 2.06 B/parameter, gpu-readiness review M2), which replace the sharded 4N/W
  they do not coexist with; the bf16 parameters in flight (FSDP: two layers all-gathered plus the
  embedding / head group; autocast's bf16 weight copies otherwise: every layer's, kept for the backward,
  or two layers' with gradient checkpointing); activations of a per-device batch of max_length tokens
  (34 h bytes per token and layer, Korthikanti et al. 2022 without the attention matrix, SDPA;
  with checkpointing only each layer's 4 h-byte input plus one layer's 34 h) and the logits (bf16, their
  float32 copy and its gradient: 10 V bytes per token).
- extraction (inference, one full copy per rank): weights 4N (+ 2N of autocast's bf16 copies with
  precision bf16), one layer's transient states for the batch's tokens (extraction.max_tokens, else
  batch_size x max_length) at 12 h x 4 bytes, and the float32 logits of one chunk (losses.py, x 3).
- generation (evaluate, responses; one process, one GPU): weights 2N with evaluation.bf16 else 4N, and
  the larger of the longest batch's KV cache, batch_size x (longest prompt + max_new_tokens) x 2 L x kv
  width, and its prompts' cache plus one layer's prefill states (12 h per token). The longest prompt:
  measured on the prepared rows with the prepared model's tokenizer when both exist, else the cut rule's
  bound (the context less max_new_tokens): generation batches are length-sorted, so the last batch holds
  the longest prompts, padded to the longest.
A rank also needs plan.gpu_memory_reserve_gb (CUDA context, NCCL buffers, allocator fragmentation).

Host RAM per GPU job (SLURM mem_mb is MiB): the checkpoint's file pages (mmapped, shared by the ranks)
plus plan.rank_host_overhead_gb per rank (torch, CUDA and the data). Extraction ranks hold nothing more:
they load a checkpoint in its own dtype and upcast on the GPU (issue 28, point 2; before, an fp16 base
became a float32 host copy per rank). Training ranks each read the whole model as float32 (4N each:
transformers 5.24 reads it on every rank, review M3); generation converts to bfloat16 on the host (2N).
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import schema, study, validation

GIB = 2**30
MIB = 2**20
# public architectures' config.json values (layers, hidden size, key/value width, vocabulary, context), so
# that a plan needs no download; a prepared model's own config.json comes first
KNOWN_SHAPES = {
    "facebook/opt-350m": (24, 1024, 1024, 50272, 2048),
    "facebook/opt-1.3b": (24, 2048, 2048, 50272, 2048),
    "facebook/opt-2.7b": (32, 2560, 2560, 50272, 2048),
    "facebook/opt-6.7b": (32, 4096, 4096, 50272, 2048),
    "facebook/opt-13b": (40, 5120, 5120, 50272, 2048),
    "meta-llama/Llama-2-7b-hf": (32, 4096, 4096, 32000, 4096),
    "meta-llama/Llama-2-13b-hf": (40, 5120, 5120, 32000, 4096),
}
# an unknown architecture: GPT-like aspect h = 128 L (OPT-6.7B/13B, Llama-2), N = 12 L h^2
ASPECT = 128
# losses.LOGITS_CHUNK_ELEMENTS (losses imports torch): float32 logits of one chunk, x 3 with softmax temporaries
LOGITS_CHUNK_BYTES = 2**26 * 4 * 3


@dataclass(frozen=True)
class Shape:
    parameters: float
    layers: int
    hidden: int
    kv_width: int  # key/value heads x head size
    vocab: int
    context: int  # positions the model attends to
    source: str = ""

    @property
    def layer_parameters(self) -> float:
        return max(0.0, self.parameters - self.vocab * self.hidden) / self.layers


def _from_config_json(path: Path, n: float) -> Shape:
    c = json.loads(path.read_text())
    c = c.get("text_config", c)
    heads = c.get("num_attention_heads", 1)
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    kv = c.get("num_key_value_heads", heads) * head_dim
    return Shape(n, c["num_hidden_layers"], c["hidden_size"], kv, c["vocab_size"],
                 c.get("max_position_embeddings", 2048), f"{path}")


def shape(config: dict, model: str, parameters: float, results=Path("results")) -> Shape:
    """The model's sizes: its prepared config.json, a fresh model's spec, a known hub id, else estimated
    from the parameter count (layers = (N / (12 x 128^2))^(1/3), h = 128 layers; context max_length +
    evaluation.max_new_tokens)."""
    spec = study.model_spec(config, model)
    prepared = Path(results) / "models" / study.base_model(config, model) / "config.json"
    if prepared.exists():
        return _from_config_json(prepared, parameters)
    if spec["source"] == "fresh":
        h = spec["hidden_size"]
        vocab = config["fresh_models"]["vocab_size"]
        return Shape(parameters, spec["num_layers"], h, h, vocab, spec.get("max_position_embeddings", 512),
                     "the fresh model's spec")
    if spec.get("path") in KNOWN_SHAPES:
        return Shape(parameters, *KNOWN_SHAPES[spec["path"]], f"{spec['path']}'s config.json")
    layers = max(1, round((parameters / (12 * ASPECT**2)) ** (1 / 3)))
    context = config["max_length"] + config["evaluation"]["max_new_tokens"]
    return Shape(parameters, layers, ASPECT * layers, ASPECT * layers, 50272, context,
                 "estimated from the parameter count")


# --- GPU budgets (bytes per rank, by component) -------------------------------------------------------


def train_budget(s: Shape, world: int, fsdp: bool, sync_each_batch: bool, accumulation: int, batch: int,
                 seq: int, checkpointing: bool) -> dict:
    """Bytes one training rank holds on its GPU at its peak, by component."""
    n, sharded = s.parameters, fsdp and world > 1
    shard = world if sharded else 1
    out = {"weights": 4 * n / shard, "gradients": 4 * n / shard, "optimizer": 8 * n / shard}
    if sharded and accumulation > 1 and not sync_each_batch:
        # no_sync micro-batches hold unsharded bf16 gradients; the sharded float32 ones exist only after
        # the last micro-batch's reduce-scatter, which frees the unsharded ones layer by layer
        out["unsharded accumulation gradients"] = max(0.0, 2 * n - out["gradients"])
    if world > 1 and not sharded:
        out["DDP gradient buckets"] = 4 * n
    tail = s.vocab * s.hidden
    if sharded:  # two layers all-gathered in bf16 (one running, one prefetched) and the head group
        out["gathered bf16 parameters"] = 2 * (2 * s.layer_parameters + tail)
    else:  # autocast's bf16 weight copies, saved for the backward unless checkpointing recomputes them
        out["bf16 weight copies"] = 2 * (2 * s.layer_parameters + tail if checkpointing else n)
    tokens = batch * seq
    per_layer = 34 * s.hidden * tokens
    out["activations"] = s.layers * 4 * s.hidden * tokens + per_layer if checkpointing else s.layers * per_layer
    out["logits"] = 10 * s.vocab * tokens
    return out


def extract_budget(s: Shape, precision: str, batch_tokens: int) -> dict:
    """Bytes one extraction rank holds on its GPU (every rank a whole float32 copy)."""
    out = {"weights": 4 * s.parameters}
    if precision == "bf16":
        out["bf16 weight copies"] = 2 * s.parameters
    out["activations"] = 12 * s.hidden * 4 * batch_tokens + 4 * s.hidden * batch_tokens
    out["logits"] = LOGITS_CHUNK_BYTES
    return out


def generate_budget(s: Shape, bf16: bool, batch: int, longest_prompt: int, max_new_tokens: int) -> dict:
    """Bytes of a generation job on its one GPU: weights, the longest batch's KV cache, prefill states."""
    width = 2 if bf16 else 4
    prompt = min(s.context, longest_prompt)
    seq = min(s.context, longest_prompt + max_new_tokens)
    kv_per_token = 2 * s.layers * s.kv_width * width
    # the prefill's states exist while the cache holds the prompts; the cache then grows to prompt + new
    prefill = batch * prompt * (kv_per_token + 12 * s.hidden * width)
    return {"weights": width * s.parameters, "KV cache and prefill": max(prefill, batch * seq * kv_per_token)}


# --- host RAM ------------------------------------------------------------------------------------------


def host_bytes(kind: str, n: float, ranks: int, file_bytes: float, overhead: float) -> float:
    """Host RAM of a job: the checkpoint's (shared, mmapped) pages, per-rank overhead, and what each kind
    of rank holds besides: a training rank the whole float32 model, a generation job its bf16 copy."""
    extra = {"train": 4 * n, "extract": 0.0, "generate": 2 * n}[kind]
    return file_bytes + ranks * (overhead + extra)


# --- the check of resources.by_model_size ---------------------------------------------------------------


@dataclass
class Need:
    row: int  # index in resources.by_model_size
    model: str
    job: str  # train | extract | generate
    gpus: int
    gpu_bytes: float  # per rank (0 on a CPU row: the job runs on the host)
    gpu_limit: float
    host_bytes: float
    host_limit: float
    parts: dict

    # CPU rows are listed, not checked: the budget's terms (CUDA overhead, the stock loss's logits) are a
    # GPU job's; a CPU job's peak RSS is in its ledger (peak_memory_mb)
    @property
    def gpu_fits(self) -> bool:
        return not self.gpus or self.gpu_bytes <= self.gpu_limit

    @property
    def host_fits(self) -> bool:
        return not self.gpus or self.host_bytes <= self.host_limit


def _row_index(config: dict, n: float) -> int:
    rows = config["resources"]["by_model_size"]
    return next((i for i, r in enumerate(rows) if n <= r["max_parameters"]), len(rows) - 1)


def _checkpointing(config: dict, row: dict) -> bool:
    return row.get("gradient_checkpointing", schema.defaulted(config, "training")["gradient_checkpointing"])


def longest_prompt(config: dict, model: str, s: Shape, results=Path("results")) -> tuple[int, str]:
    """Tokens of the longest prompt a generation job of this model meets: measured on the prepared
    evaluation rows with the prepared model's tokenizer, else the cut rule's bound."""
    ev = config["evaluation"]
    bound = max(1, s.context - ev["max_new_tokens"])
    model_dir = Path(results) / "models" / model
    rows = [Path(results) / "datasets" / d / "test.jsonl" for d in config["grid"]["datasets"]]
    rows += [Path(results) / "eval_sets" / f"{e['name']}.jsonl" for e in study.eval_sets(config)
             if e["name"] != study.HELDOUT]
    if not (model_dir / "config.json").exists() or not all(p.exists() for p in rows):
        return bound, f"the context less max_new_tokens ({s.context} - {ev['max_new_tokens']}), an upper bound"
    from .evaluation import encode_prompt
    from .fileio import read_jsonl
    from .models import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    longest = max(len(encode_prompt(r, tokenizer, bound, config["prompt_template"])[0])
                  for p in rows for r in read_jsonl(p))
    return longest, "measured on the prepared evaluation rows"


def needs(config: dict, results=Path("results"), parameters=None) -> list[Need]:
    """The GPU budget per rank and the host RAM of every job kind of every grid model, against its row
    of resources.by_model_size. `parameters(model)` gives a model's count (plan.parameters)."""
    plan, training = schema.defaulted(config, "plan"), schema.defaulted(config, "training")
    extraction, ev = schema.defaulted(config, "extraction"), config["evaluation"]
    grid = config["grid"]
    models = dict.fromkeys(grid["proxies"] + grid["targets"] + grid.get("diagnostic_models", []))
    out = []
    for model in models:
        n = parameters(model) if parameters else study.model_parameters(config, model)
        if n is None:
            continue
        i = _row_index(config, n)
        row = config["resources"]["by_model_size"][i]
        s = shape(config, model, n, results)
        gpus, world = row["gpus"], max(1, row["gpus"])
        gpu_limit = row.get("gpu_memory_gb", plan["gpu_memory_gb"]) * GIB - plan["gpu_memory_reserve_gb"] * GIB
        overhead = plan["rank_host_overhead_gb"] * GIB
        # checkpoint pages: training reads the base model (a pretrained one in its own dtype), extraction and
        # generation the largest of it and the float32 epochs / targets
        base = plan["hub_bytes_per_parameter"] if study.model_spec(config, model)["source"] == "pretrained" else 4
        files = {"train": base * n, "extract": 4 * n, "generate": 4 * n}
        fsdp = bool(training.get("fsdp"))
        sync = _sync(config)
        accumulation = max(1, training["global_batch_size"] // (training["batch_size"] * world))
        train = train_budget(s, world, fsdp, sync, accumulation, training["batch_size"], config["max_length"],
                             _checkpointing(config, row))
        batch_tokens = extraction.get("max_tokens") or extraction["batch_size"] * config["max_length"]
        extract = extract_budget(s, extraction["precision"], batch_tokens)
        prompt, _ = longest_prompt(config, model, s, results)
        generate = generate_budget(s, bool(ev.get("bf16")), ev["batch_size"], prompt, ev["max_new_tokens"])
        for job, parts, ranks, mem in (("train", train, world, row["train"]["mem_mb"]),
                                       ("extract", extract, world, row["extract"]["mem_mb"]),
                                       ("generate", generate, 1, row["extract"]["mem_mb"])):
            gpu = sum(parts.values())
            host = host_bytes(job, n, ranks, files[job], overhead) + (0 if gpus else gpu)
            used = min(gpus, ranks)  # generation runs one process on one GPU
            out.append(Need(i, model, job, used, gpu if gpus else 0, gpu_limit, host, mem * MIB, parts))
    return out


def problems(found: list[Need], config: dict) -> list[str]:
    """One line per job that does not fit its row, naming the row and the model."""
    rows = config["resources"]["by_model_size"]
    lines = []
    for need in found:
        where = f"resources.by_model_size[{need.row}] (max_parameters {rows[need.row]['max_parameters']:g})"
        if not need.gpu_fits:
            key = "gpu_memory_gb" if "gpu_memory_gb" in rows[need.row] else "plan.gpu_memory_gb"
            lines.append(f"{where}: {need.model} {need.job} needs {need.gpu_bytes / GIB:.1f} GiB per GPU, more "
                         f"than the {need.gpu_limit / GIB:.1f} GiB usable ({key} less plan.gpu_memory_reserve_gb)")
        if not need.host_fits:
            kind = "train" if need.job == "train" else "extract"
            lines.append(f"{where}: {need.model} {need.job} needs {need.host_bytes / MIB:,.0f} MB of host RAM, "
                         f"more than its {kind}.mem_mb {need.host_limit / MIB:,.0f}")
    return lines


def _sync(config: dict) -> bool:
    return schema.defaulted(config, "training")["sync_each_batch"]  # the schema's default: true


def render(found: list[Need], config: dict) -> str:
    """The memory section of the plan: every (model, job) with its budget and its row's limits."""
    plan = schema.defaulted(config, "plan")
    out = ["## Memory per job", "",
           "| row | model | job | GPUs | GPU per rank (GiB) | usable (GiB) | host (GiB) | mem_mb (GiB) | fits |",
           "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for x in found:
        gpu = f"{x.gpu_bytes / GIB:.1f}" if x.gpus else "-"
        fits = "CPU: not checked" if not x.gpus else "yes" if x.gpu_fits and x.host_fits else "**NO**"
        out.append(f"| {x.row} | {x.model} | {x.job} | {x.gpus} | {gpu} | {x.gpu_limit / GIB:.1f} | "
                   f"{x.host_bytes / GIB:.1f} | {x.host_limit / GIB:.1f} | {fits} |")
    bad = problems(found, config)
    out += [""] + ([f"- **does not fit: {line}**" for line in bad] or ["Every GPU job fits its row."])
    out += ["", f"GPU memory per card: plan.gpu_memory_gb ({plan['gpu_memory_gb']:g} GiB) or a row's gpu_memory_gb, "
            f"less plan.gpu_memory_reserve_gb ({plan['gpu_memory_reserve_gb']:g}); host: the row's mem_mb "
            f"(MiB), {plan['rank_host_overhead_gb']:g} GiB per rank besides the model (plan.rank_host_overhead_gb). "
            "The budget's terms: lpselect/memory.py. A row's GPUs must be that size: pin the card "
            "(docs/cluster.md).",
            "", f"FSDP training with training.sync_each_batch {str(_sync(config)).lower()}: "
            + ("every micro-batch is reduce-scattered (sharded float32 gradients only)." if _sync(config) else
               "micro-batches but the last keep unsharded bf16 gradients of the whole model (2 B/parameter).")]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lpselect.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="config.yaml")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = validation.load_config(args.config)
    except schema.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if "dumps" in config:
        print("a dumps study runs no model: nothing to check")
        return 0
    found = needs(config, Path(args.root) / "results")
    print(render(found, config), end="")
    return 1 if problems(found, config) else 0


if __name__ == "__main__":
    sys.exit(main())
