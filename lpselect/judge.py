"""Pairwise LLM judge: a subset-trained model against the full-data model, on any OpenAI-compatible
chat-completions endpoint (standard library only).

Every prompt is judged in both orders (the model as answer A, then as answer B) to cancel position
bias. The judge must end its reply with a line that is exactly `[[A]]`, `[[B]]` or `[[tie]]`; any
other reply is a malformed verdict, never a tie. Each judgement is appended to a JSONL cache as soon as
it arrives, keyed by the judge (model, endpoint, temperature, max_tokens), the prompts, the order and
the exact texts shown, so an interrupted job resumes without asking again and a changed setting asks
anew. Calls are retried with exponential backoff on HTTP 429, 5xx and timeouts; a call that still fails
is recorded as an error (not cached, so a rerun asks again).
"""

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from .metrics import POINTS
from .metrics import combine as combine_by_rule
from .schema import defaulted

log = logging.getLogger(__name__)

PROMPT_VERSION = "pairwise-v1"  # part of every cache key: changing the prompt invalidates the cache
SYSTEM_PROMPT = (
    "You are a careful, impartial judge of AI assistants. You are shown a user instruction and two "
    "answers, A and B. Decide which answer follows the instruction better: consider helpfulness, "
    "correctness, relevance and level of detail. Ignore the order in which the answers are shown and "
    "their length as such. You may explain briefly, but the last line of your reply must be exactly "
    "one of: [[A]] (A is better), [[B]] (B is better), [[tie]] (equally good or equally bad)."
)
USER_TEMPLATE = (
    "[Instruction]\n{instruction}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
VERDICT = re.compile(r"\[\[(A|B|tie)\]\]")
ORDERS = ("ab", "ba")  # ab: the judged model is answer A; ba: it is answer B


class JudgeCallError(RuntimeError):
    """A judge call that failed for good (after retries, or a non-retryable HTTP error)."""


def settings(cfg: dict | None) -> dict | None:
    """The judge config with the schema's defaults filled in, or None when no judge is configured."""
    if not cfg or not cfg.get("enabled", False):
        return None
    return defaulted({"judge": cfg}, "judge")


def build_messages(instruction: str, answer_a: str, answer_b: str) -> list[dict]:
    user = USER_TEMPLATE.format(instruction=instruction, answer_a=answer_a, answer_b=answer_b)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(reply) -> str | None:
    """'A', 'B' or 'tie' when the reply's last non-empty line is exactly [[A]], [[B]] or [[tie]] and no
    other verdict appears in it; None (malformed) otherwise."""
    if not isinstance(reply, str):
        return None
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines or len(VERDICT.findall(reply)) != 1:
        return None
    m = VERDICT.fullmatch(lines[-1])
    return m.group(1) if m else None


def response_length(text: str) -> int:
    """A response's length in words (whitespace-separated): the same for every model's tokenizer."""
    return len(str(text).split())


# the tie rule of a judge job's own outcome column and summary; the study's tables apply
# evaluation.tie_rule to the two verdicts (aggregate), so changing it asks the judge nothing again
JOB_TIE_RULE = "alpagasus"


def combine(points_ab: int, points_ba: int) -> int:
    """+1 win / 0 tie / -1 loss of a prompt from the judged model's points in the two orders, under
    JOB_TIE_RULE: a win in one order and a tie in the other is a win; a win and a loss is a tie."""
    return combine_by_rule(points_ab, points_ba, JOB_TIE_RULE)


class ChatClient:
    """POST {base_url}/chat/completions with retries; returns the first choice's message content."""

    RETRY_STATUS = (429, 500, 502, 503, 504)

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout_s=60.0, max_attempts=5,
                 backoff_s=1.0, max_backoff_s=30.0, temperature=0.0, max_tokens=512, sleep=time.sleep):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self._api_key = model, api_key
        self.timeout_s, self.max_attempts = timeout_s, max_attempts
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.temperature, self.max_tokens = temperature, max_tokens
        self._sleep = sleep

    def __repr__(self):  # never show the key
        return f"ChatClient({self.url!r}, model={self.model!r})"

    def _request(self, messages) -> urllib.request.Request:
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")

    def complete(self, messages) -> str:
        problem = "no attempt"
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))
            try:
                with urllib.request.urlopen(self._request(messages), timeout=self.timeout_s) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as err:
                if err.code not in self.RETRY_STATUS and err.code < 500:
                    raise JudgeCallError(f"HTTP {err.code} {err.reason}") from None
                problem = f"HTTP {err.code}"
                continue
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                problem = "timeout" if isinstance(reason, (TimeoutError, socket.timeout)) else f"connection: {reason}"
                continue
            try:
                content = json.loads(raw)["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise JudgeCallError("the response is not a chat completion") from None
            if not isinstance(content, str):
                raise JudgeCallError("the response is not a chat completion")
            return content
        raise JudgeCallError(f"gave up after {self.max_attempts} attempts (last: {problem})")


def client_from_settings(cfg: dict, env=os.environ) -> ChatClient:
    key = env.get(cfg["api_key_env"]) or None
    if key is None:
        log.warning("environment variable %s is not set: sending no Authorization header", cfg["api_key_env"])
    log.info("judge %s at %s (key from $%s)", cfg["model"], cfg["base_url"], cfg["api_key_env"])
    return ChatClient(cfg["base_url"], cfg["model"], key, timeout_s=cfg["timeout_s"],
                      max_attempts=cfg["max_attempts"], backoff_s=cfg["backoff_s"],
                      max_backoff_s=cfg["max_backoff_s"], temperature=cfg["temperature"],
                      max_tokens=cfg["max_tokens"])


def cache_key(client: "ChatClient", order: str, instruction: str, answer_a: str, answer_b: str) -> str:
    """Everything a verdict depends on: the prompts (their text, not only PROMPT_VERSION), the judge
    (model, endpoint, sampling settings), the order and the texts shown. Numbers are normalized so
    that temperature 0 and 0.0 are one setting."""
    judge = [client.model, client.url, float(client.temperature), int(client.max_tokens)]
    blob = json.dumps([PROMPT_VERSION, SYSTEM_PROMPT, USER_TEMPLATE, *judge, order, instruction, answer_a, answer_b])
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgementCache:
    """Append-only JSONL of judge replies; survives a kill mid-write (a torn last line is ignored)."""

    def __init__(self, path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    log.warning("%s: skipping an unreadable cache line", self.path)
        log.info("%s: %d cached judgements", self.path, len(self.entries))

    def get(self, key):
        return self.entries.get(key)

    def add(self, entry: dict) -> None:
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():  # a previous run killed mid-line leaves no newline: start a fresh line
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.write(line.encode())
                f.flush()
            self.entries[entry["key"]] = entry


def _shown(order: str, model_answer: str, ref_answer: str) -> tuple[str, str]:
    return (model_answer, ref_answer) if order == "ab" else (ref_answer, model_answer)


def judge_pair(records: list[dict], reference: list[dict], client: ChatClient, cache: JudgementCache,
               workers: int = 1) -> pd.DataFrame:
    """Judge every prompt in both orders; one row per prompt with both verdicts, the outcome and the
    two responses' lengths in words (`length`: the judged model's, `reference_length`) and characters
    (`chars`, `reference_chars`).

    status is 'ok' (outcome +1/0/-1), 'malformed' (a reply without a strict verdict) or 'error' (a
    call that failed for good); outcome is empty unless status is 'ok'.
    """
    if [r["instruction"] for r in records] != [r["instruction"] for r in reference]:
        raise ValueError("the model's and the reference's responses are for different prompts")
    tasks = []
    for i, (mine, ref) in enumerate(zip(records, reference)):
        for order in ORDERS:
            a, b = _shown(order, mine["output"], ref["output"])
            tasks.append((i, order, mine["instruction"], a, b, cache_key(client, order, mine["instruction"], a, b)))
    todo = [t for t in tasks if cache.get(t[-1]) is None]
    log.info("%d judgements needed, %d cached, %d to ask", len(tasks), len(tasks) - len(todo), len(todo))
    failures: dict[str, str] = {}
    done = [0]

    def ask(task):
        i, order, instruction, a, b, key = task
        try:
            reply = client.complete(build_messages(instruction, a, b))
        except JudgeCallError as err:
            log.error("prompt %d order %s: %s", i, order, err)
            failures[key] = str(err)
            return
        cache.add({"key": key, "judge_model": client.model, "prompt": i, "order": order, "reply": reply,
                   "verdict": parse_verdict(reply)})
        done[0] += 1
        if done[0] % 50 == 0:
            log.info("%d of %d judgements asked", done[0], len(todo))

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(ask, todo))
    else:
        for task in todo:
            ask(task)

    rows = []
    for i in range(len(records)):
        row = {"prompt": i, "instruction": records[i]["instruction"], "length": response_length(records[i]["output"]),
               "reference_length": response_length(reference[i]["output"]),
               "chars": len(str(records[i]["output"])), "reference_chars": len(str(reference[i]["output"]))}
        statuses, points = [], []
        for order in ORDERS:
            key = tasks[2 * i + ORDERS.index(order)][-1]
            entry = cache.get(key)
            if entry is None:
                row[f"verdict_{order}"], row[f"problem_{order}"] = "", failures.get(key, "not asked")
                statuses.append("error")
            elif entry["verdict"] is None:
                row[f"verdict_{order}"], row[f"problem_{order}"] = "", "malformed verdict"
                statuses.append("malformed")
            else:
                row[f"verdict_{order}"], row[f"problem_{order}"] = entry["verdict"], ""
                points.append(POINTS[order][entry["verdict"]])
                statuses.append("ok")
        status = "error" if "error" in statuses else ("malformed" if "malformed" in statuses else "ok")
        row["status"] = status
        row["outcome"] = combine(*points) if status == "ok" else None
        rows.append(row)
    return pd.DataFrame(rows)
