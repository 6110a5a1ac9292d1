"""Prompt templates: the Stanford Alpaca template, as used by the paper for training and scoring, or
each model's own chat template (`prompt_template: chat` / `chat_last`, tokenizer.apply_chat_template)."""

from .data import DatasetError

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)

TEMPLATES = {"alpaca": (ALPACA_WITH_INPUT, ALPACA_NO_INPUT)}
# chat: the loss on every assistant turn; chat_last: on the last one only
CHAT_TEMPLATES = ("chat", "chat_last")

# ChatML, the chat template fresh models' tokenizers get (lpselect/models.py train_tokenizer)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ChatTemplateError(DatasetError):
    """Chat rows or prompt_template chat with a tokenizer that has no (usable) chat template."""


def is_chat(template: str) -> bool:
    return template in CHAT_TEMPLATES


def prompt_format(row: dict, template: str = "alpaca") -> str:
    """The format string for one row: rows with an empty input use the template's no-input variant."""
    if "messages" in row:
        raise ChatTemplateError(f"row {row.get('id')}: chat rows need prompt_template: chat or chat_last")
    with_input, no_input = TEMPLATES[template]
    return with_input if row.get("input") else no_input


def build_prompt(row: dict, template: str = "alpaca") -> str:
    """The prompt for one row."""
    return prompt_format(row, template).format(instruction=row["instruction"], input=row.get("input", ""))


def user_text(row: dict) -> str:
    """An Alpaca row's request as one user turn: the instruction, then the input when there is one."""
    if row.get("input"):
        return f"{row['instruction']}\n\n{row['input']}"
    return row["instruction"]


def chat_messages(row: dict) -> list[dict]:
    """A row as chat turns: a chat row's own, an Alpaca row as one user turn and one assistant turn."""
    if "messages" in row:
        return [dict(t) for t in row["messages"]]
    return [{"role": "user", "content": user_text(row)}, {"role": "assistant", "content": row.get("output", "")}]


def require_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"the tokenizer of {tokenizer.name_or_path or 'this model'} has no chat template, but prompt_template "
            "chat / chat_last (and chat rows) build every prompt with the model's own one: use a model whose "
            "tokenizer carries one (an instruction-tuned model), or alpaca rows with prompt_template: alpaca")


def render(tokenizer, turns: list[dict], generation_prompt: bool = False) -> str:
    """The chat template's text for some turns (with the assistant's opening when `generation_prompt`)."""
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=generation_prompt)
