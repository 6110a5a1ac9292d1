"""Over-long rows are cut inside their text: BOS, the template and "### Response:" always survive,
the response keeps at least a quarter of the window and is cut at its end."""

import copy

import pytest
from tokenizers.processors import TemplateProcessing

from lpselect.prompts import build_prompt
from lpselect.tokenization import IGNORE_INDEX, encode_prompt, encode_row

HEAD = "Below is an instruction that describes a task"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def text(n_words: int, offset: int = 0) -> str:
    return " ".join(WORDS[(i + offset) % len(WORDS)] + str(i) for i in range(n_words))


@pytest.fixture(scope="module")
def bos_tokenizer(tiny_tokenizer):
    """The tiny tokenizer, adding BOS as Llama's and OPT's tokenizers do."""
    tok = copy.deepcopy(tiny_tokenizer)
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    assert tok("x")["input_ids"][0] == tok.bos_token_id
    return tok


def split(enc, tok):
    """Prompt text (without BOS) and response ids of an encoded row."""
    n_prompt = sum(label == IGNORE_INDEX for label in enc["labels"])
    return tok.decode(enc["input_ids"][1:n_prompt]), enc["input_ids"][n_prompt:]


def test_long_input_is_cut_at_its_end_keeping_bos_and_template(bos_tokenizer):
    row = {"id": "a", "instruction": "Summarize the text.", "input": text(300), "output": text(20, 3)}
    enc = encode_row(row, bos_tokenizer, 160)
    assert enc["input_ids"][0] == bos_tokenizer.bos_token_id
    assert enc["truncated"] and len(enc["input_ids"]) <= 160
    prompt, response = split(enc, bos_tokenizer)
    assert prompt.startswith(HEAD) and prompt.endswith("### Response:")
    assert "### Instruction:\nSummarize the text.\n\n### Input:\n" in prompt  # the instruction is whole
    kept = prompt.split("### Input:\n")[1].removesuffix("\n\n### Response:")
    assert 0 < len(kept) < len(row["input"]) and row["input"].startswith(kept)
    full_response = bos_tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [bos_tokenizer.eos_token_id]
    assert len(response) >= min(len(full_response), 160 // 4) and full_response[: len(response)] == response


def test_long_instruction_is_cut_once_the_input_is_gone(bos_tokenizer):
    row = {"id": "b", "instruction": text(200), "input": "short input", "output": "done"}
    enc = encode_row(row, bos_tokenizer, 128)
    prompt, response = split(enc, bos_tokenizer)
    assert enc["truncated"] and len(enc["input_ids"]) <= 128 and enc["input_ids"][0] == bos_tokenizer.bos_token_id
    assert prompt.startswith(HEAD) and prompt.endswith("### Input:\n\n\n### Response:")  # same template variant
    kept = prompt.split("### Instruction:\n")[1].split("\n\n### Input:")[0]
    assert 0 < len(kept) < len(row["instruction"]) and row["instruction"].startswith(kept)
    assert bos_tokenizer.decode(response) == "done</s>"  # a short response stays whole


def test_short_rows_and_long_responses_keep_their_prompt(bos_tokenizer):
    short = {"id": "c", "instruction": "Add the two numbers.", "input": "1 + 2", "output": "3"}
    enc = encode_row(short, bos_tokenizer, 512)
    prompt_ids = bos_tokenizer(build_prompt(short))["input_ids"]
    expected = prompt_ids + bos_tokenizer("3", add_special_tokens=False)["input_ids"] + [bos_tokenizer.eos_token_id]
    assert enc["input_ids"] == expected and not enc["truncated"]
    long_answer = short | {"output": text(200)}
    assert len(prompt_ids) <= 200 * 3 // 4  # only the response has to give way
    enc = encode_row(long_answer, bos_tokenizer, 200)
    assert enc["truncated"] and len(enc["input_ids"]) == 200 and enc["input_ids"][: len(prompt_ids)] == prompt_ids


def test_the_bare_template_leaves_the_response_what_is_left(bos_tokenizer):
    row = {"id": "d", "instruction": text(50), "input": text(50), "output": text(30)}
    bare, cut = encode_prompt(row, bos_tokenizer, 1)
    assert cut and bos_tokenizer.decode(bare[1:]).endswith("### Input:\n\n\n### Response:")
    few = encode_row(row, bos_tokenizer, len(bare) + 3)  # under a quarter of the window is left
    assert sum(label != IGNORE_INDEX for label in few["labels"]) == 3
    none = encode_row(row, bos_tokenizer, len(bare))
    assert none["input_ids"] == bare and set(none["labels"]) == {IGNORE_INDEX}
    with pytest.raises(ValueError, match="bare prompt template"):
        encode_row(row, bos_tokenizer, len(bare) - 1)
