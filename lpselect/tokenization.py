"""Turning a row into model inputs: prompt tokens carry no loss, the response and its EOS do.

With a chat prompt_template (chat, chat_last) the input is the model's own chat template rendered over
the row's turns and tokenized as apply_chat_template tokenizes it; the labels are the tokens of the
assistant turns (every one, or the last with chat_last), each with the end-of-turn marker the template
writes after it, found by rendering the conversation up to each turn (the template's text for a prefix
of the turns must be a prefix of its text for all of them) and mapped to tokens by their offsets.
Over max_length a conversation loses its oldest whole rounds first (encode_chat_row).
"""

import logging

from .prompts import ChatTemplateError, chat_messages, is_chat, prompt_format, render, require_chat_template

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


def _longest_fitting(encode, n: int, budget: int) -> list[int] | None:
    """encode(k) for the largest k <= n found whose ids number at most `budget`, or None when not even
    encode(0) fits (_longest_prefix's binary search on k: token counts grow with the characters kept,
    and where they locally do not, a slightly shorter cut is kept; the returned encoding was checked)."""
    if len(encode(0)) > budget:
        return None
    return encode(_longest_prefix(lambda k: len(encode(k)) <= budget, n))


def _longest_prefix(ok, n: int) -> int:
    """The largest k <= n found with ok(k) (ok(0) assumed): the module's one binary search (k: characters
    or turns kept)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _assistant_spans(tokenizer, turns: list[dict], text: str, last_only: bool, cut: set) -> list[tuple[int, int, int]]:
    """(assistant turn's position, start, end): the character spans of `text` (the template over `turns`)
    that carry the loss: each assistant turn's content and the end-of-turn marker after it (trailing
    whitespace excluded), the content alone for a turn whose content was cut (`cut`: turn positions),
    so a cut response does not teach to stop."""
    spans = []
    targets = [i for i, t in enumerate(turns) if t["role"] == "assistant"]
    for i in targets[-1:] if last_only else targets:
        opening = render(tokenizer, turns[:i], generation_prompt=True)
        through = render(tokenizer, turns[: i + 1])
        if not (text.startswith(opening) and text.startswith(through)):
            raise ChatTemplateError(f"the chat template of {tokenizer.name_or_path or 'this tokenizer'} renders the "
                                    "first turns of a conversation differently from the whole one (it rewrites "
                                    "earlier turns), so the assistant tokens cannot be located")
        content = turns[i]["content"].strip()
        at = text.find(content, len(opening), len(through)) if content else len(opening)
        if at < 0:
            raise ChatTemplateError(f"the chat template of {tokenizer.name_or_path or 'this tokenizer'} does not "
                                    "write an assistant turn's content as given")
        end = at + len(content) if i in cut else len(through.rstrip())
        spans.append((i, len(opening), end))
    return spans


def _chat_example(tokenizer, turns: list[dict], last_only: bool, cut: set = frozenset()) -> tuple[list, list, list]:
    """input_ids (the template's own tokens, as apply_chat_template gives them), labels, and the
    labelled tokens of each assistant turn (one per round, 0 for a round chat_last does not score)."""
    text = render(tokenizer, turns)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = _assistant_spans(tokenizer, turns, text, last_only, cut)
    labels, per_turn = [], {i: 0 for i, t in enumerate(turns) if t["role"] == "assistant"}
    for token, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        turn = next((i for i, start, end in spans if a < end and b > start), None)
        labels.append(IGNORE_INDEX if turn is None else token)
        if turn is not None:
            per_turn[turn] += 1
    return enc["input_ids"], labels, list(per_turn.values())


def _cut_order(turns: list[dict], upto: int) -> list[int]:
    """Which turns before position `upto` are shortened first: the oldest non-system turns, then the system."""
    others = [i for i in range(upto) if turns[i]["role"] != "system"]
    return others + [i for i in range(upto) if turns[i]["role"] == "system"]


def _shorten_turns(turns: list[dict], order: list[int], fits) -> tuple[list[dict], set, bool]:
    """Turns cut inside their content, one after the other in `order`, each from its end, until
    fits(turns) holds; returns (turns, cut positions, whether they fit)."""
    turns, cut = [dict(t) for t in turns], set()
    if fits(turns):
        return turns, cut, True
    for i in order:
        full = turns[i]["content"]
        cut.add(i)

        def with_k(k, i=i, full=full):
            return turns[:i] + [{**turns[i], "content": full[:k]}] + turns[i + 1:]

        if fits(with_k(0)):
            return with_k(_longest_prefix(lambda k: fits(with_k(k)), len(full))), cut, True
        turns = with_k(0)
    return turns, cut, False


def _rounds(turns: list[dict]) -> tuple[list[dict], list[list[dict]]]:
    """A conversation as its system turn (a list of 0 or 1) and its (user, assistant) rounds, oldest first
    (validated rows alternate from a user turn and end with an assistant turn)."""
    head = turns[:1] if turns and turns[0]["role"] == "system" else []
    body = turns[len(head):]
    return head, [body[i: i + 2] for i in range(0, len(body), 2)]


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _cut_last_round(tokenizer, head: list[dict], last: list[dict], max_length: int) -> tuple[list[dict], set] | None:
    """The system turn and the last round, cut inside the round's contents to fit max_length as the
    Alpaca path cuts a row: the answer keeps at least a quarter of the window (all of it when shorter) and is
    cut at its end; the question is cut from its end to fill the rest and must keep at least a quarter
    of the window too (all of it when shorter); the system turn is never cut. None when that does not
    fit (the row is unscorable: an answer to a question cut away, or to a system prompt cut short,
    would be scored as something it is not)."""
    question, answer = last[0]["content"], last[1]["content"]
    whole = _n_tokens(tokenizer, render(tokenizer, head + last))
    answer_tokens, question_tokens = _n_tokens(tokenizer, answer), _n_tokens(tokenizer, question)
    keep = min(answer_tokens, max(max_length - (whole - answer_tokens), max_length // 4))
    k = _longest_prefix(lambda k: _n_tokens(tokenizer, answer[:k]) <= keep, len(answer))
    cut = {len(head) + 1} if k < len(answer) else set()

    def turns_with(j):
        return head + [{**last[0], "content": question[:j]}, {**last[1], "content": answer[:k]}]

    def fits(j):
        return _n_tokens(tokenizer, render(tokenizer, turns_with(j))) <= max_length

    j = _longest_prefix(fits, len(question)) if fits(0) else -1
    if k == 0 or j < 0 or _n_tokens(tokenizer, question[:j]) < min(question_tokens, max_length // 4):
        return None
    return turns_with(j), cut


def encode_chat_row(row: dict, tokenizer, max_length: int, last_only: bool = False) -> dict:
    """encode_row for the chat templates, with `round_tokens`: the labelled tokens of each round in the
    window, oldest first (its length: the rounds kept). Over max_length, whole rounds go first: the
    oldest (user, assistant) rounds are dropped, the system turn and the last round always kept, so no
    empty turn and no answer without its question is left in the window; only when the last round alone
    does not fit is it (then the oldest round left) cut inside its contents (_cut_last_round). A row that
    cannot keep its whole system turn and a quarter of the window each of its last question and answer
    (all of them when shorter) is truncated and unscorable: no labels, round_tokens [] (counted by
    encode_rows; NaN loss downstream, so left out of selection and counted in the summary)."""
    require_chat_template(tokenizer)
    head, rounds = _rounds(chat_messages(row))
    ids, labels, round_tokens = _chat_example(tokenizer, head + sum(rounds, []), last_only)
    truncated = len(ids) > max_length
    if truncated:

        def window(k):  # the system turn and the last k rounds
            return head + sum(rounds[len(rounds) - k:], [])

        kept = _longest_prefix(lambda k: k == 0 or _n_tokens(tokenizer, render(tokenizer, window(k))) <= max_length,
                               len(rounds) - 1)
        if kept:
            ids, labels, round_tokens = _chat_example(tokenizer, window(kept), last_only)
        else:
            fitted = _cut_last_round(tokenizer, head, rounds[-1], max_length)
            if fitted is None:
                ids = tokenizer(render(tokenizer, window(1)), add_special_tokens=False)["input_ids"][:max_length]
                labels, round_tokens = [IGNORE_INDEX] * len(ids), []
            else:
                ids, labels, round_tokens = _chat_example(tokenizer, fitted[0], last_only, fitted[1])
    return {"id": row["id"], "input_ids": ids, "labels": labels, "truncated": truncated, "round_tokens": round_tokens}


def encode_chat_prompt(row: dict, tokenizer, max_tokens: int | None = None) -> tuple[list, bool]:
    """encode_prompt for the chat templates: the turns before the last assistant turn and the
    template's opening of an assistant turn. Over `max_tokens` the oldest whole rounds are dropped
    first (as encode_chat_row drops them), then the question and the system prompt are cut inside their
    content. The bare template when even that does not fit."""
    require_chat_template(tokenizer)
    head, rounds = _rounds(chat_messages(row))
    question = rounds[-1][:1]

    def ids_of(candidate):
        return tokenizer(render(tokenizer, candidate, generation_prompt=True), add_special_tokens=False)["input_ids"]

    def window(k):  # the system turn, the last k earlier rounds and the question
        return head + sum(rounds[len(rounds) - 1 - k: -1], []) + question

    ids = ids_of(window(len(rounds) - 1))
    if max_tokens is None or len(ids) <= max_tokens:
        return ids, False
    kept = _longest_prefix(lambda k: len(ids_of(window(k))) <= max_tokens, len(rounds) - 2)
    turns = window(kept)
    turns, _, _ = _shorten_turns(turns, _cut_order(turns, len(turns)), lambda c: len(ids_of(c)) <= max_tokens)
    return ids_of(turns), True


def end_of_turn_ids(tokenizer, template: str) -> list[int]:
    """Token ids that end a generated response: EOS, and with a chat template the marker it writes after
    an assistant turn (ChatML's <|im_end|>, Gemma's <end_of_turn>), which must be one special token:
    a marker of plain text (`</end>`, `</s>` where that is not a special token) would stop generation at
    its first token (`<`), and a template that writes nothing but whitespace after an answer teaches no
    stop at all, so such a template is refused, naming it."""
    stop = [tokenizer.eos_token_id]
    if is_chat(template):
        turns = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        text = render(tokenizer, turns)
        tail = text[len(render(tokenizer, turns[:1], generation_prompt=True)):].split("y", 1)[-1].strip()
        ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
        special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        if len(ids) != 1 or ids[0] not in special:
            raise ChatTemplateError(
                f"the chat template of {tokenizer.name_or_path or 'this tokenizer'} ends an assistant turn with "
                f"{tail!r}, which is not one special token of its tokenizer ({len(ids)} tokens: "
                f"{tokenizer.convert_ids_to_tokens(ids)}), so generation cannot stop at it without stopping inside "
                "answers: use a model whose template ends a turn with a special token (ChatML's <|im_end|>, "
                "Llama 3's <|eot_id|>, Gemma's <end_of_turn>), or prompt_template: alpaca")
        stop += ids
    return list(dict.fromkeys(t for t in stop if t is not None))


def encode_prompt(row: dict, tokenizer, max_tokens: int | None = None, template: str = "alpaca") -> tuple[list, bool]:
    """The prompt's token ids (with the tokenizer's BOS, if it adds one) and whether they were cut.

    Over `max_tokens`, the prompt is cut inside the row's text, never at its start, so BOS, the
    template and "### Response:" survive: the input is shortened from its end first (its beginning
    is usually what the instruction refers to), then the instruction. The row keeps its template
    variant even when its input is cut to nothing. When even the bare template is over `max_tokens`,
    the bare template is returned: callers decide what to do with the excess.
    """
    if is_chat(template):
        return encode_chat_prompt(row, tokenizer, max_tokens)
    fmt = prompt_format(row, template)
    instruction, text = row["instruction"], row.get("input", "")

    def encode(instruction, text):
        return tokenizer(fmt.format(instruction=instruction, input=text), add_special_tokens=True)["input_ids"]

    ids = encode(instruction, text)
    if max_tokens is None or len(ids) <= max_tokens:
        return ids, False
    fitted = _longest_fitting(lambda k: encode(instruction, text[:k]), len(text), max_tokens)
    if fitted is None:
        fitted = _longest_fitting(lambda k: encode(instruction[:k], ""), len(instruction), max_tokens)
    return (encode("", "") if fitted is None else fitted), True


def encode_row(row: dict, tokenizer, max_length: int, template: str = "alpaca") -> dict:
    """input_ids and labels for one row: [prompt][response][EOS], labels -100 on the prompt, and
    `truncated` (whether the prompt or the response was cut to fit max_length).

    Prompt and response are tokenized separately so the loss mask matches the text exactly (the
    paper's code tokenizes them jointly; with SentencePiece the response then starts without its
    word-boundary mark). Over max_length, the response keeps at least a quarter of the window (all
    of it when shorter) and is cut at its end, as in the paper's code; the prompt gets the rest and
    is cut inside its text (encode_prompt). Only when the bare template does not leave that quarter
    does the response get less, possibly nothing: such a sample has no token to score.
    With a chat template: encode_chat_row.
    """
    if is_chat(template):
        return encode_chat_row(row, tokenizer, max_length, last_only=template == "chat_last")
    prompt_ids, _ = encode_prompt(row, tokenizer, None, template)
    response_ids = tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    truncated = len(prompt_ids) + len(response_ids) > max_length
    if truncated:
        keep_response = min(len(response_ids), max(max_length - len(prompt_ids), max_length // 4))
        if len(prompt_ids) > max_length - keep_response:
            prompt_ids, _ = encode_prompt(row, tokenizer, max_length - keep_response, template)
        if len(prompt_ids) > max_length:
            raise ValueError(f"max_length {max_length} is shorter than the bare prompt template ({len(prompt_ids)} tokens)")
        # a prompt cut at character granularity may leave the response a few more tokens than it was promised
        response_ids = response_ids[: max_length - len(prompt_ids)]
    return {
        "id": row["id"],
        "input_ids": prompt_ids + response_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
        "truncated": truncated,
        "round_tokens": [len(response_ids)],
    }


def encode_rows(rows, tokenizer, max_length: int, template: str = "alpaca") -> list[dict]:
    examples = [encode_row(r, tokenizer, max_length, template) for r in rows]
    unscorable = sum(all(label == IGNORE_INDEX for label in e["labels"]) for e in examples)
    log.info(
        "%d of %d rows truncated to %d tokens (tokenizer %s), %d left without a response token",
        sum(e["truncated"] for e in examples), len(examples), max_length, tokenizer.name_or_path or "in memory", unscorable,
    )
    if is_chat(template):
        dropped = [len(_rounds(chat_messages(r))[1]) - len(e["round_tokens"]) for r, e in zip(rows, examples)
                   if e["round_tokens"]]
        log.info("%d conversations cut to their last rounds (%d rounds dropped in all); %d unscorable: even their "
                 "last round does not fit", sum(d > 0 for d in dropped), sum(dropped), len(examples) - len(dropped))
    return examples


def ensure_pad_token(tokenizer) -> None:
    """Tokenizers without a pad token pad with EOS; labels are built explicitly, so EOS stays supervised."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts its BOS in front of what it encodes (Llama, gemma) rather than only
    defining one (the fresh tokenizer's <s>, SmolLM2's <|im_start|>)."""
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def response_only(examples: list[dict], tokenizer) -> list[dict]:
    """The same samples without their prompt, for IFD's second pass: exactly the response tokens
    encode_row scored (truncation included, EOS included), so both passes score the same tokens,
    after the model's BOS only where the tokenizer adds one to the prompted pass too (a token the model
    never sees at the start of an input would inflate the first loss). Without it the first response
    token has no context and is not scored, as in Superfiltering's response-alone pass."""
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    out = []
    for e in examples:
        response = [label for label in e["labels"] if label != IGNORE_INDEX]
        labels = [IGNORE_INDEX] * len(bos) + response
        out.append({"id": e["id"], "input_ids": bos + response, "labels": labels, "truncated": e["truncated"]})
    return out
