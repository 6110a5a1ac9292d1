"""One function per workflow stage, from input paths to output paths.

The Snakemake scripts in workflow_scripts/ only unpack `snakemake.*` and call these, so every stage
can be run and tested without Snakemake. Outputs are written atomically or published at the end, so a
failed stage leaves nothing behind.

Longer than 400 lines on purpose: it is the one index from a rule to its code, a short function per
stage (27, in the order of the workflow: data, models, proxy, selection, evaluation, judge, dumps), each
handing its work to the module of its concern (data, training, losses, selection, evaluation, judge,
dumps). Split by rule file it would only mirror rules/ without separating any concern.
"""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from . import data, scoring, selection, synthetic
from .fileio import parameter_count, read_jsonl, write_csv, write_json, write_jsonl
from .tokenized import extraction_examples, training_examples  # the examples a job (or each rank) reads

# torch, transformers and scikit-learn are imported inside the stages that need them: light jobs
# (select, score, ifd) then start in a fraction of a second, which matters over hundreds of jobs.

log = logging.getLogger(__name__)


def prepare_dataset(name: str, spec: dict, train_out, test_out, stats_out, drop_leaked_from=None) -> None:
    """Normalized rows with stable ids, split into train and held-out test; what was dropped or found
    (empty rows, exact duplicates) is counted in the log and in `stats_out`. With `drop_leaked_from`
    (the named evaluation sets' files; evaluation.drop_leaked) the training rows that contain a prompt
    of one of them or of the held-out split are dropped and counted (`leaked_dropped`)."""
    stats = {"dataset": name, "dropped_empty": 0}
    held_out = None  # a generated held-out split (the facts kind), instead of one drawn from the rows
    if spec["source"] == "synthetic":
        rows, held_out = synthetic.rows(spec)
    elif spec["source"] == "hub":
        rows = data.load_hub_rows(spec["path"], spec.get("split", "train"), name, spec.get("subset"),
                                  spec.get("field_map"), spec.get("drop_empty", False), stats,
                                  spec.get("format", "alpaca"))
    else:
        rows = data.load_local_rows(spec["path"], name, spec.get("field_map"), spec.get("drop_empty", False), stats,
                                    spec.get("format", "alpaca"))
    rows = data.take_slice(rows, spec.get("limit"), spec.get("sample"), spec.get("seed", 0))
    groups = data.duplicate_groups(rows)
    stats |= {"n_rows": len(rows), "duplicates": int((groups != np.arange(len(rows))).sum()),
              "duplicate_source_ids": data.duplicate_source_ids(rows)}
    if stats["duplicate_source_ids"]:
        log.warning("%s: %d rows repeat an earlier row's own id (kept as source_id; the workflow's ids are unique)",
                    name, stats["duplicate_source_ids"])
    if spec.get("dedupe", False):
        rows = data.drop_duplicates(rows)
    stats["deduplicated"] = stats["n_rows"] - len(rows)
    if stats["duplicates"]:
        log.warning("%s: %d rows repeat an earlier row exactly (instruction, input, output); %s", name,
                    stats["duplicates"], "dropped (dedupe)" if stats["deduplicated"] else
                    "kept, each group on one side of the split (set dedupe: true to drop them)")
    train, test = (rows, held_out) if held_out is not None else data.split_rows(rows, spec["test_size"], spec.get("seed", 0))
    if drop_leaked_from is not None:
        from . import leaks

        eval_rows = [r for path in drop_leaked_from for r in read_jsonl(path)] + list(test)
        train, stats["leaked_dropped"] = leaks.drop(train, eval_rows)
        log.info("%s: dropped %d training rows that contain an evaluation prompt (evaluation.drop_leaked)", name,
                 stats["leaked_dropped"])
    stats |= {"n_train": len(train), "n_test": len(test)}
    log.info("%s: %d train rows, %d test rows", name, len(train), len(test))
    write_jsonl(train_out, train, sort_keys=False)  # each row's source record in its own key order
    write_jsonl(test_out, test, sort_keys=False)
    write_json(stats_out, stats)


def leak_check(train_path, eval_paths: dict, out_json) -> None:
    """How many prompts of each evaluation set (name -> rows file; the held-out split among them) the
    training rows contain, exactly and normalised (leaks.count), with a warning per set that has any."""
    from . import leaks

    counts = leaks.count(read_jsonl(train_path), {name: read_jsonl(path) for name, path in eval_paths.items()})
    for c in counts["sets"]:
        if c["normalised"]:
            log.warning("%s: %d of %d prompts appear in the training rows (%d exactly, the rest after normalising "
                        "whitespace and case), in %d training rows", c["name"], c["normalised"], c["n_prompts"],
                        c["exact"], c["train_rows"])
    write_json(out_json, counts)


def build_tokenizer(train_rows_path, vocab_size: int, template: str, out_dir) -> None:
    from . import models

    tok = models.train_tokenizer(read_jsonl(train_rows_path), vocab_size, template)
    log.info("tokenizer with %d tokens", len(tok))
    tok.save_pretrained(out_dir)


def prepare_model(
    spec: dict, seed: int, out_dir, tokenizer_dir=None, warmup=None, hp=None, max_length=512, template="alpaca",
    knobs=None,
) -> None:
    """A base model folder: a fresh decoder from sizes and a seed (warmed up on generated rows), a
    copy of a pretrained one (in its own dtype), or the float32 conversion of a packaged GGUF file."""
    from . import models

    if spec["source"] == "fresh":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        model = models.build_fresh_model(spec, tokenizer, seed)
        if warmup and warmup["epochs"] > 0:
            _warm_up(model, tokenizer, warmup, hp, seed, max_length, template, Path(f"{out_dir}.warmup-state"),
                     knobs)
    elif spec["source"] == "gguf":
        model, tokenizer = models.convert_gguf(spec, out_dir)
    else:
        # a copy: in the checkpoint's own dtype (a bf16 checkpoint stays bf16, half the disk and RAM of
        # float32) and on the CPU (no GPU is held just to save it); training upcasts when it loads it
        model, tokenizer = models.load_model(spec["path"], dtype=models.CHECKPOINT_DTYPE, device="cpu",
                                             trust_remote_code=spec.get("trust_remote_code", False))
    log.info("%s: %d parameters", out_dir, models.count_parameters(model))
    models.save_model(model, tokenizer, out_dir)


def _warm_up(model, tokenizer, warmup: dict, hp: dict, seed: int, max_length: int, template: str, state_dir,
             knobs=None):
    """Stand-in for pretraining: a short fine-tune on generated rows with their own seed (`knobs`:
    the training settings that do not change the result, left out of the fingerprint)."""
    from . import training
    from .tokenization import encode_rows

    # facts: every wording, the held-out one included (pretraining knows how each question is asked),
    # about other creatures than the study's
    rows, _ = synthetic.rows(warmup | {"warmup": True})
    log.info("warm-up on %d generated rows (seed %d) for %d epochs", len(rows), warmup["seed"], warmup["epochs"])
    examples = encode_rows(rows, tokenizer, max_length, template)
    # resume only the warm-up of this very model (sizes, seeds, settings)
    parameters = {"architecture": model.config.to_dict(), "warmup": warmup, "hp": hp, "seed": seed,
                  "max_length": max_length, "template": template}
    training.use_state(state_dir, training.fingerprint(parameters, {}))
    training.train(model, tokenizer, examples, hp | (knobs or {}) | {"epochs": warmup["epochs"]}, state_dir, seed,
                   epochs_to_keep=[])
    training.publish(state_dir, {})


def tokenize(tokenizer_dir, rows_path, max_length: int, template: str, out_dir) -> None:
    """The training split encoded once for one tokenizer (encode_rows: ids, input_ids, labels,
    truncated), saved as a Hugging Face dataset folder that every training and extraction job reads."""
    from . import models, tokenization, tokenized

    tokenizer = models.load_tokenizer(tokenizer_dir)
    examples = tokenization.encode_rows(read_jsonl(rows_path), tokenizer, max_length, template)
    tokenized.save_examples(examples, out_dir)
    log.info("%s: %d examples, %d tokens", out_dir, len(examples), sum(len(e["input_ids"]) for e in examples))


def train_model(
    model_dir,
    tokenized_dir,
    subset_path,
    hp: dict,
    seed: int,
    epoch_outputs: dict,
    state_dir,
    ledger_out,
    processes: int = 1,
    knobs: dict | None = None,
    loss_curve_out=None,
) -> None:
    """Fine-tune; epoch_outputs maps each epoch to keep to its output folder (proxy: the epochs the
    study reads, target: the last); training stops after the last of them, on the schedule of
    hp["epochs"]. The examples are the tokenize stage's dataset folder `tokenized_dir`, restricted to the
    subset's ids (subset_path, a select output) if given. With processes > 1 the training runs
    data-parallel in that many ranks (one per GPU), each reading the same folder. `hp` holds the
    settings that change the result, `knobs` those that do not (study.training_knobs: per-device batch
    size, gradient checkpointing, logging); only `hp` is fingerprinted. The loss log (train_log.json)
    goes into the last kept epoch's folder and, when given, to `loss_curve_out` too."""
    from . import distributed, ledger, models, training

    watch = ledger.Stopwatch()
    examples = training_examples(tokenized_dir, subset_path)
    epochs = sorted(epoch_outputs)
    # resume only a state this very job left (same settings, same inputs); wipe one a changed job left.
    # max_length and the template are in the tokenized folder, which is fingerprinted by content.
    parameters = {"hp": hp, "seed": seed, "epochs_kept": epochs, "processes": processes}
    inputs = {"model": model_dir, "tokenized": tokenized_dir, "subset": subset_path}
    training.use_state(state_dir, training.fingerprint(parameters, inputs))
    hp = hp | (knobs or {})  # not part of the fingerprint: they change the memory, speed or log, not the model
    if processes > 1:
        args = {"model_dir": str(model_dir), "tokenized_dir": str(tokenized_dir),
                "subset_path": subset_path and str(subset_path), "hp": hp, "seed": seed,
                "state_dir": str(state_dir), "epochs_to_keep": epochs}
        rank_peaks = distributed.launch("train", args, processes)
        saved = {e: Path(state_dir) / f"epoch-{e}" for e in epochs}
    else:
        rank_peaks = None
        model, tokenizer = models.load_model(model_dir, device="cpu")  # the Trainer places it
        saved = training.train(model, tokenizer, examples, hp, state_dir, seed, epochs_to_keep=epochs)
    trained = max(epochs)  # an lp_app-only proxy stops after epoch 1 of its schedule
    tokens = trained * sum(len(e["input_ids"]) for e in examples)
    n_params = parameter_count(saved[epochs[-1]])
    watch.record(ledger_out, "train", n_params, tokens, rank_peaks, samples=len(examples), epochs=trained,
                 processes=processes,
                 global_batch_size=hp["global_batch_size"], batch_size=hp["batch_size"],
                 gradient_accumulation_steps=training.accumulation_steps(hp, processes))
    log_src = Path(state_dir) / "train_log.json"
    if loss_curve_out:  # the model folders are temporary; the loss curve stays beside the ledger
        Path(loss_curve_out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_src, f"{loss_curve_out}.tmp")
        os.replace(f"{loss_curve_out}.tmp", loss_curve_out)
    moves = {saved[e]: out for e, out in epoch_outputs.items()}
    training.publish(state_dir, moves | {log_src: Path(epoch_outputs[epochs[-1]]) / "train_log.json"})


def extract_losses(
    model_dir, tokenized_dir, cfg: dict, out_csv, ledger_out, processes: int = 1, response_only: bool = False,
) -> None:
    """Per-sample response losses of one model on the tokenize stage's dataset folder `tokenized_dir`
    (`cfg`: the config's extraction section); with processes > 1, one rank per GPU, each reading the same
    folder. `response_only` scores the same response tokens without their prompt (IFD's second pass)."""
    from . import distributed, ledger, losses, models

    watch = ledger.Stopwatch()
    tokenizer = models.load_tokenizer(model_dir)
    examples = extraction_examples(tokenized_dir, tokenizer, response_only)
    if processes > 1:
        args = {"model_dir": str(model_dir), "tokenized_dir": str(tokenized_dir), "cfg": cfg,
                "part_prefix": str(out_csv), "response_only": response_only}
        rank_peaks = distributed.launch("extract", args, processes)
        frame = distributed.merge_parts(out_csv, processes)
    else:
        rank_peaks = None
        model, _ = models.load_model(model_dir)
        frame = losses.per_sample_losses(
            model, examples, pad_id=tokenizer.pad_token_id, desc=str(model_dir), **losses.extraction_options(cfg)
        )
    log.info("%s: %d samples, %d truncated (when tokenized), %d unscorable (no response token left: NaN loss)",
             model_dir, len(frame), frame["truncated"].sum(), (frame["n_tokens"] == 0).sum())
    write_csv(out_csv, frame)
    tokens = sum(len(e["input_ids"]) for e in examples)
    watch.record(ledger_out, "forward", parameter_count(model_dir), tokens, rank_peaks, samples=len(examples),
                 processes=processes)


def extract_epochs(model_dirs: list, tokenized_dir, cfg: dict, out_csvs: list, ledger_outs: list, state_dir,
                   parameters: dict, processes: int = 1) -> None:
    """extract_losses for every epoch of one proxy in one job (the imports and start of a job cost more
    than a small model's pass). Each finished epoch is kept in `state_dir`, fingerprinted by the models,
    the tokenized rows and `parameters`, so a killed job resumes at the next epoch; the outputs appear
    together at the end."""
    from . import training

    inputs = {f"model {i}": d for i, d in enumerate(model_dirs)} | {"tokenized": tokenized_dir}
    training.use_state(state_dir, training.fingerprint(parameters, inputs))
    moves = {}
    for model_dir, out_csv, ledger_out in zip(model_dirs, out_csvs, ledger_outs):
        part, part_ledger = Path(state_dir) / Path(out_csv).name, Path(state_dir) / f"{Path(out_csv).stem}.ledger.json"
        if part.exists() and part_ledger.exists():
            log.info("%s: losses already extracted (%s)", model_dir, part)
        else:
            extract_losses(model_dir, tokenized_dir, cfg, f"{part}.tmp", part_ledger, processes)
            os.replace(f"{part}.tmp", part)  # an epoch counts as done only once its table is whole
        moves |= {part: out_csv, part_ledger: ledger_out}
    training.publish(state_dir, moves)


def score(loss_csvs: list, rows_path, seed: int, out_csv, epochs: int | None = None) -> None:
    table = scoring.score_table([pd.read_csv(p) for p in loss_csvs], seed, names=[str(p) for p in loss_csvs],
                                epochs=epochs)
    log.info("%s: %d samples, %d unscorable (NaN scores), %d truncated", out_csv, len(table),
             (~table["scorable"]).sum(), table["truncated"].sum() if "truncated" in table else 0)
    rows = read_jsonl(rows_path)
    if "difficulty" in rows[0]:  # ground truth of the synthetic default, kept for the figures
        table.insert(1, "difficulty", [r["difficulty"] for r in rows])
    write_csv(out_csv, table)


def ifd(prompted_csv, response_csv, out_csv) -> None:
    table = scoring.ifd_table(pd.read_csv(prompted_csv), pd.read_csv(response_csv))
    ifd = table.loc[table["scorable"], "ifd"]
    log.info("%s: %d samples, %d unscorable, median IFD %.3f, %d with IFD >= 1", out_csv, len(table),
             (~table["scorable"]).sum(), ifd.median(), (ifd >= 1).sum())
    write_csv(out_csv, table)


def response_lengths(model_dir, rows_path, out_csv, template: str = "alpaca") -> None:
    """Response length in tokens of the model's tokenizer (no special tokens, no truncation): what the
    proxy is trained on, so under prompt_template chat every assistant turn of a chat row, summed."""
    from . import models
    from .prompts import chat_messages

    tokenizer = models.load_tokenizer(model_dir)
    rows = read_jsonl(rows_path)

    def answers(row):
        if template == "chat":
            return [t["content"] for t in chat_messages(row) if t["role"] == "assistant"]
        return [row["output"]]

    lengths = [sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers(r)) for r in rows]
    log.info("%s: %d responses, median %d tokens (tokenizer of %s)", out_csv, len(rows), np.median(lengths), model_dir)
    write_csv(out_csv, pd.DataFrame({"id": [r["id"] for r in rows], "length": lengths}))


def cluster(rows_path, cfg: dict, out_csv, threads: int | None = None) -> None:
    from . import clustering

    rows = read_jsonl(rows_path)
    labels = clustering.assign_clusters(rows, cfg, threads)
    write_csv(out_csv, pd.DataFrame({"id": [r["id"] for r in rows], "cluster": labels}))


def select(subset_name: str, rows_path, scores_csv, clusters_csv, out_json, options: dict | None = None,
           pool_csv=None) -> None:
    """`options`: the method's own settings (study.select_options); `pool_csv`: the score table whose
    scorable rows the budget is counted on when it is not `scores_csv` (selection.select)."""
    subset = selection.Subset.parse(subset_name)
    ids = pd.Series([r["id"] for r in read_jsonl(rows_path)])
    scores = pd.read_csv(scores_csv) if scores_csv else None
    clusters = pd.read_csv(clusters_csv) if clusters_csv else None
    pool = pd.read_csv(pool_csv) if pool_csv else None
    chosen = selection.select(subset, ids, scores, clusters, pool_scores=pool, **(options or {}))
    log.info("%s: %d of %d rows (%.3f, nominal %s)", subset_name, chosen["n_selected"], chosen["n_total"],
             chosen["realized_fraction"], subset.budget)
    write_json(out_json, chosen)


def evaluate(model_dir, rows_path, cfg: dict, max_length: int, template: str, pred_out, metrics_out,
             ledger_out=None, responses: dict | None = None, generator: str = "") -> None:
    """One trained model's evaluation, the only part that runs the model (loaded once): held-out losses
    and (cfg['generate']) greedy generations (`pred_out`), the metrics of those predictions alone
    (`metrics_out`), and its answers to every evaluation set in AlpacaEval's format (what the judge
    reads): `responses` maps a set's name to (its prompts' JSONL, the output JSON); the held-out split's
    prompts are `rows_path` and its answers the generations already made when cfg['generate'].
    Comparisons with another model are `compare`'s, so a change to them never needs this model again.
    The ledger records the forward tokens and the decoding steps and seconds of every set (the cost
    plan's per-step decoding latency)."""
    from . import evaluation, ledger, models
    from .responses import alpaca_eval_records
    from .study import HELDOUT

    watch = ledger.Stopwatch()
    model, tokenizer = models.load_model(model_dir, dtype=evaluation.weights_dtype(cfg))
    rows = read_jsonl(rows_path)
    stats = {}
    frame = evaluation.predict(model, tokenizer, rows, cfg | {"max_length": max_length}, template, stats)
    write_csv(pred_out, frame)
    # the metrics read the predictions back as `compare` reads them (same types, same NaN handling)
    summary = evaluation_metrics(read_predictions(pred_out), rows)
    for name, (set_path, out) in sorted((responses or {}).items()):
        if name == HELDOUT and cfg["generate"]:
            set_rows, outputs = rows, frame["generation"].tolist()
        else:
            set_rows, used = (rows if name == HELDOUT else read_jsonl(set_path)), {}
            outputs = evaluation.greedy_generate(model, tokenizer, set_rows, cfg["batch_size"], cfg["max_new_tokens"],
                                                 template, used)
            for key, value in used.items():
                stats[key] = round(stats.get(key, 0) + value, 3)
        log.info("%s: %d responses to %s", generator, len(outputs), name)
        write_json(out, alpaca_eval_records(set_rows, outputs, generator))
    write_json(metrics_out, summary)
    if ledger_out:
        tokens = stats.pop("loss_tokens") + stats.get("prompt_tokens", 0) + stats.get("decode_tokens", 0)
        watch.record(ledger_out, "forward", sum(p.numel() for p in model.parameters()), tokens, samples=len(rows),
                     batch_size=cfg["batch_size"], **stats)


def compare(pred_csv, reference_csv, tie_tolerance: float, out_json) -> None:
    """Per-prompt verdicts of a model's predictions against the full-data model's (offline judge), and
    their wins / ties / losses and win rate: light, so a new tolerance reruns no model."""
    from . import metrics

    pred, reference = read_predictions(pred_csv), read_predictions(reference_csv)
    if pred["id"].tolist() != reference["id"].tolist():
        raise data.DatasetError(f"{pred_csv} and {reference_csv} list different prompts")
    summary = metrics.pairwise_summary(metrics.pairwise_outcomes(pred, reference, tie_tolerance))
    log.info("%s vs %s: W/T/L %d/%d/%d, win rate %.3f (tie tolerance %g)", pred_csv, reference_csv,
             summary["wins"], summary["ties"], summary["losses"], summary["win_rate"], tie_tolerance)
    write_json(out_json, summary | {"tie_tolerance": tie_tolerance})


def compare_all(pred_csvs, reference_csvs, tie_tolerance: float, out_jsons) -> None:
    """`compare` for each model of a target against its full-data reference (one light job per target)."""
    for pred_csv, reference_csv, out_json in zip(pred_csvs, reference_csvs, out_jsons, strict=True):
        compare(pred_csv, reference_csv, tie_tolerance, out_json)


def read_predictions(path) -> pd.DataFrame:
    # an empty generation stays "", an unscorable row's loss is NaN
    return pd.read_csv(path, keep_default_na=False, na_values={"loss": [""], "perplexity": [""]})


def evaluation_metrics(pred: pd.DataFrame, rows: list[dict] | None) -> dict:
    """Metrics of a model's predictions on their own; ROUGE-L against the `rows`' responses when given."""
    from . import metrics

    references = None
    if rows is not None:
        by_id = {r["id"]: r["output"] for r in rows}
        references = [by_id[i] for i in pred["id"]]
    return metrics.summarize(pred, references)


def prepare_eval_set(spec: dict, out_jsonl) -> None:
    from .responses import load_eval_set

    write_jsonl(out_jsonl, load_eval_set(spec))


def judge(responses_json, reference_json, cfg: dict, cache_path, out_json, out_csv) -> None:
    """Pairwise LLM judgement of a model's responses against the full-data model's (one evaluation set),
    both orders: the per-prompt table (`out_csv`) and its summary (`out_json`, metrics.judge_summary)."""
    from . import judge as judging
    from . import metrics

    records = json.loads(Path(responses_json).read_text())
    reference = json.loads(Path(reference_json).read_text())
    client = judging.client_from_settings(cfg)
    cache = judging.JudgementCache(cache_path)
    table = judging.judge_pair(records, reference, client, cache, workers=cfg["workers"])
    # this job's own look at its set (judging.JOB_TIE_RULE); the tables apply evaluation.tie_rule
    summary = metrics.judge_summary(table, cfg["bootstrap"], cfg["confidence"], cfg["seed"], judging.JOB_TIE_RULE,
                                    cfg["lc_bootstrap"])
    summary |= {"judge_model": cfg["model"], "generator": records[0]["generator"] if records else "",
                "reference": reference[0]["generator"] if reference else ""}
    log.info("W/T/L %d/%d/%d, %d malformed, %d errors: win rate %.3f [%.3f, %.3f], winning score %.3f, "
             "length-controlled win rate %.3f (log ratio) / %.3f (AlpacaEval), mean length %.1f vs %.1f words, "
             "verdict flipped with the order on %.1f%% of the prompts (tie rule %s)", summary["wins"], summary["ties"], summary["losses"], summary["malformed"],
             summary["errors"], summary["win_rate"], summary["win_rate_lo"], summary["win_rate_hi"],
             summary["winning_score"], summary["lc_win_rate_logratio"], summary["lc_win_rate_alpacaeval"],
             summary["length"], summary["reference_length"], 100 * summary["order_flip_rate"], summary["tie_rule"])
    write_csv(out_csv, table)
    write_json(out_json, summary)


def judge_all(responses_jsons, reference_jsons, cfg: dict, cache_paths, out_jsons, out_csvs) -> None:
    """`judge` for each evaluation set of a model (one job per model), each set with its own cache."""
    for args in zip(responses_jsons, reference_jsons, cache_paths, out_jsons, out_csvs, strict=True):
        log.info("judging %s", args[0])
        judge(args[0], args[1], cfg, *args[2:])


def fetch_dump(source: str, dataset: str, model: str, out_paths) -> None:
    from . import dumps

    dumps.fetch(source, dataset, model, out_paths)


def score_dump(paths, dataset: str, seed: int, out_csv) -> None:
    """The workflow's score table, from the paper's released per-epoch perplexities."""
    from . import dumps

    # unscorable rows keep the paper's values (P = 1, LP(1) = 0) and are marked scorable = False
    table = scoring.score_table(dumps.epoch_losses(list(paths), dataset), seed)
    log.info("%s: %d samples, %d unscorable (P = 1.0 at every epoch), median LP(1) %.3f",
             out_csv, len(table), (~table["scorable"]).sum(), table["lp1"].median())
    write_csv(out_csv, table)


def dump_scorable(all_rows: dict, unscorable: str, out_scores: dict, out_counts) -> None:
    """Per model, the score table on the rows the study uses (config key dumps.unscorable), and the
    count of unscorable rows per model and of their union."""
    from . import dumps

    tables = {model: pd.read_csv(path) for model, path in all_rows.items()}
    keep, counts = dumps.scorable_in_every_model(tables, unscorable)
    log.info("unscorable rows (%s):\n%s", unscorable, counts.to_string(index=False))
    for model, table in tables.items():
        write_csv(out_scores[model], table[keep])
    write_csv(out_counts, counts)


def dump_tables(score_paths: dict, fractions, outputs: dict) -> None:
    from .dump_tables import write_dump_tables
    from .dumps import DumpError

    lengths = {name: sum(1 for _ in open(path)) - 1 for name, path in score_paths.items()}
    if len(set(lengths.values())) > 1:
        raise DumpError(f"models of one dataset list different numbers of samples: {lengths}")
    write_dump_tables(score_paths, fractions, outputs)


def dump_summary(tables: dict, pairs, unscorable: str, out_md) -> None:
    from .dump_tables import dumps_summary
    from .fileio import write_text

    write_text(out_md, dumps_summary(tables, pairs, unscorable))


def study_tables(outputs: dict, **inputs) -> None:
    """The aggregate rule: every table of a study (aggregate.write_tables) and the worth table, drawn from
    its metrics and compute tables (lpselect.worth reads aggregate's helpers, so aggregate cannot call it)."""
    from . import aggregate
    from .worth import worth_table

    metrics, compute = aggregate.write_tables(outputs=outputs, **inputs)
    if "worth" in outputs:
        write_csv(outputs["worth"], worth_table(metrics, compute))
