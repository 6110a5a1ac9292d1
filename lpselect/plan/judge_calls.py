"""Calls of the judge a study makes (or would make), their tokens and their price."""

import json
import statistics
from pathlib import Path

from .. import schema, study
from .common import ROOT
from .dryrun import Job
from .sizes import Sizes

def judge_calls(config: dict, jobs: list[Job], sizes: Sizes, plan: dict | None = None,
                results=ROOT / "results") -> dict:
    """Calls of the configured judge (judge jobs, one per judged model, x its sets' prompts x 2 orders),
    per evaluation set, and what a judge would ask for every model compared with a full-data model on
    every set (judge.sets, else all) if none is configured; with `plan`, their tokens and price
    (judge_tokens)."""
    grid = config["grid"]
    judged = [j for j in jobs if j.rule == "judge"]
    enabled = bool(config.get("judge", {}).get("enabled"))
    sets = study.judged_sets(config)
    per_set = {name: {"jobs": 0, "calls": 0} for name in sets}
    for j in judged:
        for name in sets:
            per_set[name]["jobs"] += 1
            per_set[name]["calls"] += 2 * sizes.set_prompts(j.wildcards["dataset"], name)
    per_dataset = sum(
        1 for _t in grid["targets"] for _sel, sub in study.trained_models(grid) if study.pairwise_reference(grid, sub)
    )
    names = (config.get("judge") or {}).get("sets") or [s["name"] for s in study.eval_sets(config)]
    would = {name: sum(2 * per_dataset * sizes.set_prompts(d, name) for d in grid["datasets"]) for name in names}
    out = {"enabled": enabled, "jobs": len(judged), "calls": sum(e["calls"] for e in per_set.values()),
           "per_set": per_set, "models_per_dataset": per_dataset, "would_call": sum(would.values()),
           "would_per_set": would}
    if plan is not None:
        calls = {name: e["calls"] for name, e in per_set.items()} if enabled else would
        tokens = {name: judge_tokens(config, plan, sizes, name, results) for name in calls}
        price = plan["judge_price"]
        usd = {name: calls[name] * (t["input"] * price["input"] + t["output"] * price["output"]) / 1e6
               for name, t in tokens.items()}
        out |= {"tokens": tokens, "usd": usd, "total_usd": sum(usd.values()),
                "total_tokens": sum(calls[n] * (t["input"] + t["output"]) for n, t in tokens.items())}
    return out


def _set_prompts(config: dict, name: str, results: Path) -> list[dict]:
    """The prepared prompts of an evaluation set (the held-out split: every grid dataset's), if any."""
    from ..fileio import read_jsonl

    if name != study.HELDOUT:
        paths = [results / "eval_sets" / f"{name}.jsonl"]
    else:
        paths = [results / "datasets" / d / "test.jsonl" for d in config["grid"]["datasets"]]
    return [row for path in paths if path.exists() for row in read_jsonl(path)]


def judge_tokens(config: dict, plan: dict, sizes: Sizes, name: str, results=ROOT / "results") -> dict:
    """Input and output tokens of one judge call on an evaluation set. Input: the judge's messages
    (judge.build_messages) rendered with the set's prompts, measured once the set is prepared (else its
    plan.tokens_per_row), and two answers of the mean length of the set's responses once some exist
    (else evaluation.max_new_tokens each, an upper bound); characters over plan.judge_chars_per_token.
    Output: judge.max_tokens, an upper bound (the judge may explain before its verdict)."""
    from .. import judge as judging
    from ..prompts import user_text

    cpt = plan["judge_chars_per_token"]
    template = sum(len(m["content"]) for m in judging.build_messages("", "", ""))
    rows = _set_prompts(config, name, Path(results))
    if rows:
        prompt, source = statistics.mean(len(user_text(r)) for r in rows), f"measured on {len(rows):,} rendered prompts"
    else:
        per_row = [sizes.tokens_per_row[d] for d in config["grid"]["datasets"]] if name == study.HELDOUT \
            else [sizes.tokens_per_row[name]]
        prompt, source = statistics.mean(per_row) * cpt, "prompts of plan.tokens_per_row (not prepared yet)"
    # a sample of the set's responses files (there can be thousands): their mean answer length
    files = sorted(Path(results).glob(f"responses/*/{name}/*/*/*.json"))[:50]
    answers = [len(r["output"]) for f in files for r in json.loads(f.read_text())]
    if answers:
        answer, answer_source = statistics.mean(answers), f"answers measured in {len(files)} responses file(s)"
    else:
        answer, answer_source = config["evaluation"]["max_new_tokens"] * cpt, "answers of max_new_tokens (upper bound)"
    return {"input": (template + prompt + 2 * answer) / cpt, "output": float(schema.defaulted(config, "judge")["max_tokens"]),
            "source": f"{source}; {answer_source}"}

