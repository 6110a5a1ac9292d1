# What the files of rules/ share: the config (validated), the grid, wildcard constraints, resources and the
# input functions of the study's rules. Just over 400 lines: the input functions read one another and the
# grid, so they stay together; the export's are in common_export.smk.
import re
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# the library lives beside this workflow; installed in .venv, but importable from a plain checkout too
sys.path.insert(0, str(Path(workflow.basedir)))

from lpselect import judge, schema, study, validation
from lpselect.selection import (
    REFERENCE_PATTERN,
    SUBSET_PATTERN,
    Subset,
    full_reference_seed,
)

# Schema plus cross-references (unknown models, datasets), before any job starts.
validation.validate_config(config)

DUMPS_STUDY = "dumps" in config
RES = config["resources"]
FORMATS = config["figures"]["formats"]

if DUMPS_STUDY:
    DATASETS = config["dumps"]["datasets"]
    SCORED_MODELS = config["dumps"]["models"]
    TABLES = ["rank_correlation", "overlap", "trajectories"]
    # figure -> the tables it is drawn from (every figure also gets the score tables)
    FIGURE_TABLES = {
        "rank_correlation": ["rank_correlation"],
        "overlap": ["overlap"],
        "trajectories": [],
        "lp_distribution": [],
    }
else:
    GRID = config["grid"]
    # the proxy epochs the study's methods read (an lp_app-only study trains and extracts one)
    EPOCHS = study.proxy_epochs(config)
    KEEP = schema.defaulted(config, "keep")
    DATASETS = GRID["datasets"]
    SCORED_MODELS = study.scoring_models(GRID)
    # every training run of a scoring model: "<model>" (one, with the study seed) or, with
    # grid.proxy_seeds, "<model>/seed<N>" per grid seed; score tables, losses and proxies are named so
    SCORED_RUNS = study.proxy_runs(config, SCORED_MODELS)
    TABLES = [
        "metrics",
        "seeds",
        # each selection minus the same-size random baseline of its seed, over seeds
        "paired",
        "subsets",
        "composition",
        "rank_correlation",
        "compute",
        "model_sizes",
        # every selection against the random frontier at its own total compute (lpselect/worth.py)
        "worth",
    ]
    FIGURE_TABLES = {
        "metric_vs_fraction": ["metrics"],
        "transfer_heatmap": ["metrics"],
        "rank_correlation": ["rank_correlation"],
        "trajectories": [],
        "composition": ["composition"],
        "compute_cost": ["compute"],
        "fraction_to_parity": ["metrics", "model_sizes"],
        "thirds": ["metrics"],
        "method_comparison": ["metrics"],
        "same_size": ["metrics"],
        "transfer": ["transfer"],
        "robustness": ["robustness"],
        "worth": ["metrics", "compute"],
    }
    # proxy recipes (models.<name>.from): {model: base, settings, seed} for the robustness table
    RECIPES = study.recipes(config)
    METHODS = study.method_settings(config)
    # the proxy checkpoint IFD is measured with (0 = the base model)
    IFD_EPOCH = METHODS["ifd"]["epoch"]
    # the evaluation sets by name; study.HELDOUT is the dataset's own held-out split
    EVAL_SETS = {s["name"]: s for s in study.eval_sets(config)}
    # sorted by name, as every list of sets here: the order of evaluation.eval_sets changes no job
    NAMED_SETS = sorted(name for name in EVAL_SETS if name != study.HELDOUT)
    # None when no judge is configured (no `judge` block, or enabled: false)
    JUDGE = judge.settings(config.get("judge"))
    # the sets every evaluated model answers (in its evaluate job), and those the judge reads
    RESPONSE_SETS = study.response_sets(config)
    JUDGED_SETS = study.judged_sets(config)
    # (selector, subset) of every model of a target compared with a full-data model
    COMPARED = [
        (sel, sub)
        for sel, sub in study.trained_models(GRID)
        if study.pairwise_reference(GRID, sub)
    ]
    if JUDGE:
        TABLES += ["judged", "judged_seeds"]
        FIGURE_TABLES |= {
            "judged_vs_fraction": ["judged"],
            "judged_parity": ["judged", "model_sizes"],
        }
# the figures each dataset has the data for (every figure of a dumps study; a training study's follow its grid)
FIGURES_OF = {
    d: list(FIGURE_TABLES) if DUMPS_STUDY else study.figures(config, d)
    for d in DATASETS
}
FIGURES = [f for f in FIGURE_TABLES if any(f in drawn for drawn in FIGURES_OF.values())]
# one job draws every figure that each dataset has (one matplotlib start, each table read once; rule
# figures); a job each (rule figure) draws the transfer diagnostic's figures, which need no fine-tune,
# and any figure some datasets lack (composition: generated datasets only)
DIAGNOSTIC_FIGURES = ("transfer", "robustness")
SHARED_FIGURES = [
    f
    for f in FIGURES
    if f not in DIAGNOSTIC_FIGURES and all(f in FIGURES_OF[d] for d in DATASETS)
]
ALONE_FIGURES = [f for f in FIGURES if f not in SHARED_FIGURES]
# the methods are compared on the first (cheapest) proxy's selections
FIGURE_OPTIONS = (
    {"pairs": config["dumps"]["pairs"]}
    if DUMPS_STUDY
    else {"proxy": GRID["proxies"][0]}
)
MODEL_NAMES = "|".join(
    map(re.escape, config["dumps"]["models"] if DUMPS_STUDY else config["models"])
)


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    figure="|".join(ALONE_FIGURES) or "(?!)",  # (?!): matches nothing
    model=MODEL_NAMES,
    proxy=MODEL_NAMES,
    target=MODEL_NAMES,
    selector=f"none|{MODEL_NAMES}",
    tokenizer=f"fresh|{MODEL_NAMES}",
    # a proxy's training run (study.proxy_run): empty, or seed<N> after a slash with grid.proxy_seeds
    run="(/seed[0-9]+)?",
    subset=f"{REFERENCE_PATTERN}|{SUBSET_PATTERN}",
    epoch=r"\d+",
    eval_set="|".join(map(re.escape, EVAL_SETS)) if not DUMPS_STUDY else "none",


def model_of(wildcards):
    return wildcards.get("proxy") or wildcards.get("target") or wildcards.get("model")


def sized(kind, key, passes=1):
    """A resource of a model job from the by_model_size table; runtime (x passes: a job that runs the
    model that many times) grows with each retry up to resources.max_runtime_min
    (study.retry_runtime). The GPU keys (gpu_model, cpus_per_gpu) are unset (None) for a row without
    GPUs or without that key: sbatch then gets no --gpus=<model>:0 and the threads as --cpus-per-task.
    """

    def get(wildcards, attempt):
        row = study.size_resources(config, model_of(wildcards), kind)
        if key in ("gpu_model", "cpus_per_gpu"):
            return row[key] if row["gpus"] and row[key] else None
        if key == "runtime":
            return study.retry_runtime(config, row[key] * passes, attempt)
        return row[key]

    return get


def sized_threads(wildcards):
    return study.size_resources(config, model_of(wildcards), "train")["threads"]


def one_gpu(kind):
    """A single-process model job (evaluate, responses) asks for at most one GPU, whatever its size row says."""
    gpus = sized(kind, "gpus")
    return lambda wildcards, attempt: min(1, gpus(wildcards, attempt))


def fresh_only_gpu(resource, cpu_value):
    """A GPU resource of prepare_model: a fresh model is warmed up (on a GPU if its row has one); a
    pretrained or packaged one is copied on the CPU (cpu_value: no GPU, no GPU model)"""
    return lambda wildcards, attempt: (
        resource(wildcards, attempt)
        if study.model_spec(config, wildcards.model)["source"] == "fresh"
        else cpu_value
    )


def checkpoint(path, keep):
    """A model folder, deleted once every job that reads it is done unless the config keeps it."""
    return directory(path) if keep else temp(directory(path))


def fresh_only(value):
    """A prepare_model param that only a fresh model uses (None for the others, so that changing it
    does not rerun a pretrained copy or a GGUF conversion)."""
    return lambda wildcards: (
        value
        if study.model_spec(config, wildcards.model)["source"] == "fresh"
        else None
    )


def light(key):
    return lambda wildcards, attempt: (
        study.retry_runtime(config, RES["light"][key], attempt)
        if key == "runtime"
        else RES["light"][key]
    )


def final_outputs():
    outputs = expand(
        "results/tables/{dataset}/{table}.csv", dataset=DATASETS, table=TABLES
    ) + [
        f"results/figures/{d}/{figure}.{ext}"
        for d in DATASETS
        for figure in FIGURES_OF[d]
        for ext in FORMATS
    ]
    if DUMPS_STUDY:
        outputs.append("results/dumps-summary.md")
    else:
        outputs += ["results/summary.md"] + diagnostic_outputs()
        outputs += export_outputs()  # rules/common_export.smk
        outputs += [
            f"results/responses/{d}/{e}/{t}/{sel}/{sub}.json"
            for d in DATASETS
            for e in RESPONSE_SETS
            for t, sel, sub in evaluated_models()
        ]
    return outputs


def diagnostic_outputs():
    """The transfer diagnostic (no target fine-tune): table per dataset, and figure where two or more
    models score the rows."""
    tables = ["transfer"] + (["robustness"] if len(RECIPES) >= 2 else [])
    return expand(
        "results/tables/{dataset}/{table}.csv", dataset=DATASETS, table=tables
    ) + [
        f"results/figures/{d}/{figure}.{ext}"
        for d in DATASETS
        for figure in ("transfer", "robustness")
        if figure in FIGURES_OF[d]
        for ext in FORMATS
    ]


def ifd_runs():
    return SCORED_RUNS if "ifd" in GRID["methods"] else []


def first_run_scores(dataset, models):
    """{model: score table} of the run the first seed's subsets read (one table per model, for the
    summary's and the figures' per-model views)."""
    if DUMPS_STUDY:
        return {m: f"results/scores/{dataset}/{m}.csv" for m in models}
    run = study.proxy_run(config, GRID["seeds"][0])
    return {m: f"results/scores/{dataset}/{m}{run}.csv" for m in models}


def figure_inputs(wildcards, figures=None):
    """The tables the figure (or every figure of `figures`) is drawn from, and the score tables."""
    d = wildcards.dataset
    inputs = {
        t: f"results/tables/{d}/{t}.csv"
        for figure in figures or [wildcards.figure]
        for t in FIGURE_TABLES[figure]
    }
    inputs["scores"] = list(first_run_scores(d, SCORED_MODELS).values())
    return inputs


def shared_figure_inputs(wildcards):
    return figure_inputs(wildcards, SHARED_FIGURES)


def base_model_dir(wildcards):
    """The prepared model a proxy trains from: its own, or a recipe's base model's (converted once)."""
    return f"results/models/{study.base_model(config, wildcards.proxy)}"


def proxy_epoch_dir(dataset, proxy, epoch, run=""):
    if int(epoch) == 0:
        return f"results/models/{study.base_model(config, proxy)}"
    return f"results/proxies/{dataset}/{proxy}{run}/epoch-{epoch}"


def model_to_evaluate(wildcards):
    if wildcards.subset == "base":
        return f"results/models/{wildcards.target}"
    return f"results/targets/{wildcards.dataset}/{wildcards.target}/{wildcards.selector}/{wildcards.subset}"


def fresh_tokenizer_dir():
    """The tokenizer every fresh model shares, trained on fresh_models.tokenizer_dataset."""
    return f"results/tokenizers/{config['fresh_models']['tokenizer_dataset']}"


def fresh_tokenizer_input(wildcards):
    if study.model_spec(config, wildcards.model)["source"] == "fresh":
        return fresh_tokenizer_dir()
    return []


def tokenizer_name(model):
    """Fresh models share one tokenizer ("fresh"); every other model has its own, named after it (a
    proxy recipe uses its base model's)."""
    base = study.base_model(config, model)
    return "fresh" if config["models"][base]["source"] == "fresh" else base


def tokenizer_source(wildcards):
    """The folder a tokenize job loads its tokenizer from: the shared one, or the model's own folder."""
    if wildcards.tokenizer == "fresh":
        return fresh_tokenizer_dir()
    return f"results/models/{wildcards.tokenizer}"


def tokenized(wildcards):
    """The training split tokenized for the job's model: one folder per (dataset, tokenizer)."""
    return (
        f"results/tokenized/{wildcards.dataset}/{tokenizer_name(model_of(wildcards))}"
    )


def subset_inputs(wildcards):
    """The method's own table (none for random), the score table whose scorable rows the budget is
    counted on where that is another (the selector's for ifd, the first proxy's for random and
    length), and the semantic clusters for the cluster scheme and for s2l's budget."""
    subset = Subset.parse(wildcards.subset)
    d, selector = wildcards.dataset, wildcards.selector
    run = study.proxy_run(config, subset.seed)  # the proxy run of the subset's seed
    inputs = {"rows": f"results/datasets/{d}/train.jsonl"}
    pool = f"results/scores/{d}/{study.pool_model(GRID, selector)}{run}.csv"
    if subset.method == "ifd":
        inputs["scores"] = f"results/ifd/{d}/{selector}{run}.csv"
    elif subset.method == "length":
        inputs["scores"] = f"results/lengths/{d}.csv"
    elif subset.method != "random":
        inputs["scores"] = f"results/scores/{d}/{selector}{run}.csv"
    if inputs.get("scores") != pool:
        inputs["pool"] = pool
    if study.uses_clusters(GRID, subset):
        inputs["clusters"] = f"results/clusters/{wildcards.dataset}.csv"
    return inputs


def full_reference_first(wildcards):
    return 10 if full_reference_seed(wildcards.subset) is not None else 0


def finetune_inputs(wildcards):
    inputs = {
        "model": f"results/models/{wildcards.target}",
        "tokenized": tokenized(wildcards),
    }
    if full_reference_seed(wildcards.subset) is None:
        inputs["subset"] = (
            f"results/subsets/{wildcards.dataset}/{wildcards.selector}/{wildcards.subset}.json"
        )
    return inputs


def judge_references(wildcards):
    """The responses of the full-data model (of the model's seed) to each judged set."""
    reference = study.pairwise_reference(GRID, wildcards.subset)
    return [
        f"results/responses/{wildcards.dataset}/{e}/{wildcards.target}/none/{reference}.json"
        for e in JUDGED_SETS
    ]


def judged_models():
    """(evaluation set, target, selector, subset) of every judge output: each judged set, each compared model."""
    return [(e, *m) for e in JUDGED_SETS for m in compared_models()] if JUDGE else []


def compared_models():
    """(target, selector, subset) of every model compared with a full-data model (offline, and by the
    judge when one is configured)."""
    return [m for m in evaluated_models() if study.pairwise_reference(GRID, m[2])]


def evaluated_models():
    return [
        (t, sel, sub)
        for t in GRID["targets"]
        for sel, sub in study.trained_models(GRID)
    ]


def trained_targets():
    """Evaluated models that were fine-tuned (not the untrained base)."""
    return [m for m in evaluated_models() if m[2] != "base"]


def proxy_ledgers(dataset, proxy):
    """The ledgers of a proxy run's jobs ("<model><run>"), by kind (and epoch), for charging each
    method what it used."""
    ledger = f"results/ledger/{{}}/{dataset}/{proxy}"
    return {
        "train": f"{ledger.format('train_proxy')}.json" if EPOCHS else None,
        "extract": {
            e: f"{ledger.format('extract_losses')}/epoch-{e}.json"
            for e in range(EPOCHS + 1)
        },
        "response_only": (
            {
                IFD_EPOCH: f"{ledger.format('extract_response_losses')}/epoch-{IFD_EPOCH}.json"
            }
            if "ifd" in GRID["methods"] + GRID["thirds"]
            else {}
        ),
    }


def ledger_files(ledgers):
    """The paths of a proxy_ledgers() structure."""
    if isinstance(ledgers, dict):
        return [path for value in ledgers.values() for path in ledger_files(value)]
    return [ledgers] if ledgers else []


def aggregate_inputs(wildcards):
    models = evaluated_models()
    d = wildcards.dataset
    return {
        "metrics": [
            f"results/eval/{d}/{t}/{sel}/{sub}/metrics.json" for t, sel, sub in models
        ],
        "subsets": [
            f"results/subsets/{d}/{sel}/{sub}.json" for sel, sub in study.subsets(GRID)
        ],
        "scores": [f"results/scores/{d}/{run}.csv" for run in SCORED_RUNS],
        "target_ledgers": [
            f"results/ledger/finetune_target/{d}/{t}/{sel}/{sub}.json"
            for t, sel, sub in trained_targets()
        ],
        "proxy_ledgers": [
            path
            for proxy in study.proxy_runs(config, GRID["proxies"])
            for path in ledger_files(proxy_ledgers(d, proxy))
        ],
        "rows": f"results/datasets/{d}/train.jsonl",
        "models": [f"results/models/{t}" for t in GRID["targets"]],
        "pairwise": [
            f"results/eval/{d}/{t}/{sel}/{sub}/pairwise.json"
            for t, sel, sub in compared_models()
        ],
        "judge": [
            f"results/judge/{d}/{e}/{t}/{sel}/{sub}.json"
            for e, t, sel, sub in judged_models()
        ],
        "verdicts": [
            f"results/judge/{d}/{e}/{t}/{sel}/{sub}.csv"
            for e, t, sel, sub in judged_models()
        ],
    }
