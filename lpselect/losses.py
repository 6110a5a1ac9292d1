"""Per-sample response perplexity, P = exp(mean cross-entropy over the response tokens).

Samples are batched in length order so little is padded (optionally up to a token budget, so short
samples share big batches), and the output projection and cross-entropy run only on the positions that
carry a label, a chunk at a time, so memory does not grow with batch x length x vocabulary. Right padding
with an attention mask keeps a sample's value independent of its batch neighbours. `precision`
(extraction.precision, a result setting): fp32, tf32 (float32 with TF32 matmuls, CUDA only) or bf16
(bfloat16 autocast, CPU or GPU); the cross-entropy itself is always float32.

`share_prefix` groups samples by the prompt template they start with; the prefix a whole batch shares
(Alpaca's template is ~25 of a sample's ~115 tokens) runs once per distinct prefix, and its key/value
cache stands in for those tokens in every batch that starts with it: the same numbers (causal attention
makes a prefix's states independent of what follows) for about a fifth less compute.
"""

import contextlib
import copy
import logging
from collections import Counter

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .tokenization import IGNORE_INDEX

log = logging.getLogger(__name__)


def length_sorted_batches(lengths, batch_size: int, max_tokens: int | None = None, groups=None) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (stable, so the grouping is deterministic):
    `batch_size` samples each, or with `max_tokens` as many as fit that padded size (samples x longest),
    so short samples fill big batches and the matrix products stay large. With `groups` (a label per
    sample), a batch never mixes labels."""
    lengths = np.asarray(lengths)
    if groups is None:
        groups = np.zeros(len(lengths), dtype=int)
    batches = []
    for label in np.unique(groups):
        members = np.flatnonzero(groups == label)
        batches += _split(members[np.argsort(lengths[members], kind="stable")], lengths, batch_size, max_tokens)
    return batches


def _split(order, lengths, batch_size, max_tokens) -> list[np.ndarray]:
    if not max_tokens:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches, current = [], []
    for i in order:
        # ascending order: the sample being added is the longest of its batch
        if current and (len(current) + 1) * lengths[i] > max_tokens:
            batches.append(np.array(current))
            current = []
        current.append(i)
    batches.append(np.array(current))
    return batches


# Prefixes longer than this are not looked for when grouping samples by template.
TEMPLATE_SEARCH_TOKENS = 128


def prompt_end(example) -> int:
    """Index of the first labelled token: everything before it is prompt."""
    return next((i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX), len(example["labels"]))


def template_groups(examples, min_count: int) -> np.ndarray:
    """A label per sample: the longest prompt prefix it shares with at least `min_count` samples
    (its template, e.g. one of Alpaca's two), or -1 where none is shared that widely. Labels number
    the prefixes in order of first appearance, so the grouping is deterministic."""
    # a rolling hash names every prefix; a rare collision could only merge groups (batches run slower,
    # never wrong: the prefix actually shared is recomputed from the tokens of each batch)
    hashes = []
    for e in examples:
        h, row = 0, []
        for token in e["input_ids"][: min(prompt_end(e), TEMPLATE_SEARCH_TOKENS)]:
            h = hash((h, token))
            row.append(h)
        hashes.append(row)
    counts = Counter(h for row in hashes for h in row)
    names, labels = {}, []
    for row in hashes:
        shared = next((h for h in reversed(row) if counts[h] >= min_count), None)
        labels.append(-1 if shared is None else names.setdefault(shared, len(names)))
    return np.array(labels, dtype=int)


def shared_prefix_length(batch: dict) -> int:
    """How many leading tokens every sample of a padded batch has in common, stopping before the last
    position whose output is needed (the one that predicts the batch's first labelled token)."""
    ids, labels = batch["input_ids"], batch["labels"]
    same = (ids == ids[:1]).all(dim=0).long().cumprod(dim=0).sum().item()
    labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    first_label = labelled[0].item() if len(labelled) else ids.shape[1]
    return max(0, min(same, first_label - 1))


def pad_batch(examples, pad_id: int) -> dict:
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# Logits are built for at most this many (position x vocabulary) entries at a time (256 MB in float32):
# 1365 positions of SmolLM2's 49k vocabulary, 256 of gemma-3's 262k.
LOGITS_CHUNK_ELEMENTS = 2**26


def _logits(model, hidden):
    """Float32 logits of some hidden states (softcapping applied where the model has it)."""
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def response_token_nll(model, batch: dict, past=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 cross-entropy of every labelled token of a padded batch (flat), and the boolean mask of
    where those tokens sit in the shifted labels. Used with gradients by the trainer too, also on
    flattened batches (packing.FlattenedBatches: one row, position_ids restarting per sample, no padding
    mask), which keep their samples apart only without a cache (use_cache=False here).

    The output projection and the cross-entropy run on the labelled positions only, in chunks, so
    memory stays flat in batch x length x vocabulary. `past`, the key/value cache of a prefix every row
    shares (prefix_cache), stands in for the batch's first tokens: only the rest run, and the mask's
    positions start after the prefix."""
    prefix = past.get_seq_length() if past is not None else 0
    if past is not None:
        past.batch_repeat_interleave(len(batch["input_ids"]))
    hidden = model.get_decoder()(
        input_ids=batch["input_ids"][:, prefix:],
        attention_mask=batch.get("attention_mask"),
        position_ids=batch.get("position_ids"),
        cache=past,
        use_cache=past is not None,
    ).last_hidden_state
    # position t predicts token t+1: shift labels left
    targets = batch["labels"][:, prefix + 1 :]
    positions = targets != IGNORE_INDEX
    selected, labels = hidden[:, :-1][positions], targets[positions]
    chunk = max(1, LOGITS_CHUNK_ELEMENTS // model.get_output_embeddings().out_features)
    nll = [
        F.cross_entropy(_logits(model, selected[i : i + chunk]), labels[i : i + chunk], reduction="none")
        for i in range(0, len(labels), chunk)
    ]
    return (torch.cat(nll) if nll else selected.new_zeros(0, dtype=torch.float32)), positions


def autocast(model, bf16: bool):
    """bfloat16 autocast on the model's device type, or nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=model.device.type, dtype=torch.bfloat16)


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def matmul_precision(device: torch.device, precision: str):
    """TF32 for CUDA float32 matmuls while `precision` is tf32 (restored after); on other devices TF32
    does not exist, and the log says the pass runs in plain float32."""
    if precision != "tf32":
        yield
        return
    if device.type != "cuda":
        log.info("extraction.precision tf32 has no effect on %s: matmuls run in float32", device.type)
        yield
        return
    matmul = torch.backends.cuda.matmul
    before, matmul.fp32_precision = matmul.fp32_precision, "tf32"  # the API the Trainer's tf32 uses too
    try:
        yield
    finally:
        matmul.fp32_precision = before


# Distinct prefixes whose caches one extraction keeps (a few templates; more only for unusual data).
MAX_CACHED_PREFIXES = 64


def prefix_cache(model, prefix_ids: torch.Tensor, store: dict):
    """A fresh copy of the key/value cache of one row of prefix tokens, run once per distinct prefix
    (a template serves many batches) and kept in `store`."""
    key = tuple(prefix_ids.tolist())
    if key not in store:
        if len(store) >= MAX_CACHED_PREFIXES:
            store.clear()
        store[key] = model.get_decoder()(input_ids=prefix_ids[None], use_cache=True).cache
    # the forward pass extends the cache it is given, so each batch gets its own copy
    return copy.deepcopy(store[key])


@torch.inference_mode()
def batch_token_losses(
    model, batch: dict, bf16: bool = False, prefixes: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response-token cross-entropy and response-token count per sample of one padded batch.
    With `prefixes` (a dict kept across batches), the tokens every row starts with run from a cached
    key/value prefix."""
    batch = {k: v.to(model.device) for k, v in batch.items()}
    shared = shared_prefix_length(batch) if prefixes is not None else 0
    with autocast(model, bf16):
        past = prefix_cache(model, batch["input_ids"][0, :shared], prefixes) if shared else None
        token_nll, positions = response_token_nll(model, batch, past)
    sample_of_token = positions.nonzero()[:, 0]
    sums = torch.zeros(len(positions), dtype=torch.float64, device=token_nll.device)
    sums.index_add_(0, sample_of_token, token_nll.double())
    return sums, positions.sum(dim=1)


def extraction_options(cfg: dict) -> dict:
    """per_sample_losses' batching arguments from the config's `extraction` section."""
    return {
        "batch_size": cfg["batch_size"],
        "max_tokens": cfg.get("max_tokens"),
        "precision": cfg.get("precision", "fp32"),
        "share_prefix": cfg.get("share_prefix", True),
    }


def per_sample_losses(
    model,
    examples: list[dict],
    batch_size: int,
    pad_id: int,
    desc="losses",
    rank: int = 0,
    world: int = 1,
    max_tokens: int | None = None,
    precision: str = "fp32",
    share_prefix: bool = True,
) -> pd.DataFrame:
    """One row per example (input order): id, n_tokens, loss (mean response NLL), perplexity and
    truncated (from encode_row). A sample left without a response token to score gets n_tokens 0 and
    NaN loss and perplexity (not exp(0) = 1, which would rank it); a non-finite value of any other
    sample means a diverged model and raises ValueError naming the samples and `desc`.

    With world > 1, this process scores only every world-th batch starting at `rank` and returns those
    rows; concatenated and sorted by `index`, the parts of all ranks are exactly the single-process
    table (whole batches are split, so nothing is padded or counted twice).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"extraction.precision {precision!r}: one of {', '.join(PRECISIONS)}")
    model.eval()
    # a template shared by a tenth of the samples (and at least a batch of them) gets batches of its own
    groups = template_groups(examples, max(batch_size, len(examples) // 10)) if share_prefix else None
    lengths = [len(e["input_ids"]) for e in examples]
    batches = length_sorted_batches(lengths, batch_size, max_tokens, groups)[rank::world]
    mine = np.sort(np.concatenate(batches)) if batches else np.array([], dtype=int)
    sums = np.zeros(len(examples))
    counts = np.zeros(len(examples), dtype=np.int64)
    prefixes = {} if share_prefix else None
    with matmul_precision(model.device, precision):
        for idx in tqdm(batches, desc=desc, mininterval=5):
            s, c = batch_token_losses(model, pad_batch([examples[i] for i in idx], pad_id), precision == "bf16",
                                      prefixes)
            sums[idx], counts[idx] = s.cpu().numpy(), c.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        loss = sums[mine] / counts[mine]  # 0 / 0 = NaN for samples without a response token
        perplexity = np.exp(loss)
    diverged = (counts[mine] > 0) & ~(np.isfinite(loss) & np.isfinite(perplexity))
    if diverged.any():
        bad = [examples[i]["id"] for i in mine[diverged][:5]]
        raise ValueError(f"{desc}: non-finite loss or perplexity for {diverged.sum()} samples (a diverged model?), "
                         f"first {bad}")
    frame = pd.DataFrame(
        {
            "id": [examples[i]["id"] for i in mine],
            "n_tokens": counts[mine],
            "loss": loss,
            "perplexity": perplexity,
            "truncated": [bool(examples[i].get("truncated", False)) for i in mine],
        }
    )
    if world > 1:
        frame.insert(0, "index", mine)
    return frame
