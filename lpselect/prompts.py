"""The Stanford Alpaca prompt template, as used by the paper for training and scoring."""

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


def prompt_format(row: dict, template: str = "alpaca") -> str:
    """The format string for one row: rows with an empty input use the template's no-input variant."""
    with_input, no_input = TEMPLATES[template]
    return with_input if row.get("input") else no_input


def build_prompt(row: dict, template: str = "alpaca") -> str:
    """The prompt for one row."""
    return prompt_format(row, template).format(instruction=row["instruction"], input=row.get("input", ""))
