import re
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# the library lives beside this workflow; installed in .venv, but importable from a plain checkout too
sys.path.insert(0, str(Path(workflow.basedir)))

from lpselect import judge, study
from lpselect.selection import (
    REFERENCE_PATTERN,
    SUBSET_PATTERN,
    Subset,
    full_reference_seed,
)

# Schema plus cross-references (unknown models, datasets), before any job starts.
study.validate_config(config)

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
    KEEP = study.defaulted(config, "keep")
    DATASETS = GRID["datasets"]
    SCORED_MODELS = study.scoring_models(GRID)
    TABLES = [
        "metrics",
        "seeds",
        "subsets",
        "composition",
        "rank_correlation",
        "compute",
        "model_sizes",
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
    }
    METHODS = study.method_settings(config)
    # the proxy checkpoint IFD is measured with (0 = the base model)
    IFD_EPOCH = METHODS["ifd"]["epoch"]
    EVAL = config["evaluation"]
    # the evaluation sets by name; study.HELDOUT is the dataset's own held-out split
    EVAL_SETS = {s["name"]: s for s in study.eval_sets(config)}
    NAMED_SETS = [name for name in EVAL_SETS if name != study.HELDOUT]
    # None when no judge is configured (no `judge` block, or enabled: false)
    JUDGE = judge.settings(config.get("judge"))
    # evaluate writes the held-out split's responses itself (its generations are them)
    REUSE_PREDICTIONS = EVAL["generate"] and study.HELDOUT in EVAL_SETS
    # the sets whose responses the study writes: every named set; the held-out split when evaluate
    # generates anyway or a judge reads them
    RESPONSE_SETS = [
        name
        for name in EVAL_SETS
        if name != study.HELDOUT or EVAL["generate"] or JUDGE is not None
    ]
    # the sets the responses rule generates for (evaluate does the held-out split when it generates)
    GENERATED_SETS = [
        name for name in RESPONSE_SETS if name != study.HELDOUT or not REUSE_PREDICTIONS
    ]
    if JUDGE:
        TABLES += ["judged", "judged_seeds"]
        FIGURE_TABLES |= {
            "judged_vs_fraction": ["judged"],
            "judged_parity": ["judged", "model_sizes"],
        }
FIGURES = list(FIGURE_TABLES)
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
    figure="|".join(FIGURES),
    model=MODEL_NAMES,
    proxy=MODEL_NAMES,
    target=MODEL_NAMES,
    selector=f"none|{MODEL_NAMES}",
    tokenizer=f"fresh|{MODEL_NAMES}",
    subset=f"{REFERENCE_PATTERN}|{SUBSET_PATTERN}",
    epoch=r"\d+",
    eval_set="|".join(map(re.escape, EVAL_SETS)) if not DUMPS_STUDY else "none",


def model_of(wildcards):
    return wildcards.get("proxy") or wildcards.get("target") or wildcards.get("model")


def sized(kind, key):
    """A resource of a model job from the by_model_size table; runtime grows with each retry."""

    def get(wildcards, attempt):
        value = study.size_resources(config, model_of(wildcards), kind)[key]
        return value * attempt if key == "runtime" else value

    return get


def sized_threads(wildcards):
    return study.size_resources(config, model_of(wildcards), "train")["threads"]


def one_gpu(kind):
    """A single-process model job (evaluate, responses) asks for at most one GPU, whatever its size row says."""
    gpus = sized(kind, "gpus")
    return lambda wildcards, attempt: min(1, gpus(wildcards, attempt))


def checkpoint(path, keep):
    """A model folder, deleted once every job that reads it is done unless the config keeps it."""
    return directory(path) if keep else temp(directory(path))


def fresh_only(value):
    """A prepare_model param that only a fresh model uses (None for the others, so that changing it
    does not rerun a pretrained copy or a GGUF conversion)."""
    return lambda wildcards: (
        value if config["models"][wildcards.model]["source"] == "fresh" else None
    )


def training_hp(wildcards):
    return study.training_settings(config, model_of(wildcards))


def light(key):
    return lambda wildcards, attempt: RES["light"][key] * (
        attempt if key == "runtime" else 1
    )


def final_outputs():
    outputs = expand(
        "results/tables/{dataset}/{table}.csv", dataset=DATASETS, table=TABLES
    ) + expand(
        "results/figures/{dataset}/{figure}.{ext}",
        dataset=DATASETS,
        figure=FIGURES,
        ext=FORMATS,
    )
    if DUMPS_STUDY:
        outputs.append("results/dumps-summary.md")
    else:
        outputs += ["results/summary.md"] + diagnostic_outputs()
    if not DUMPS_STUDY:
        outputs += [
            f"results/responses/{d}/{e}/{t}/{sel}/{sub}.json"
            for d in DATASETS
            for e in RESPONSE_SETS
            for t, sel, sub in evaluated_models()
        ]
    return outputs


def diagnostic_outputs():
    """The transfer diagnostic (no target fine-tune): table and figure per dataset."""
    return expand("results/tables/{dataset}/transfer.csv", dataset=DATASETS) + expand(
        "results/figures/{dataset}/transfer.{ext}", dataset=DATASETS, ext=FORMATS
    )


def ifd_proxies():
    return SCORED_MODELS if "ifd" in GRID["methods"] else []


def figure_inputs(wildcards):
    d = wildcards.dataset
    inputs = {t: f"results/tables/{d}/{t}.csv" for t in FIGURE_TABLES[wildcards.figure]}
    inputs["scores"] = [f"results/scores/{d}/{m}.csv" for m in SCORED_MODELS]
    return inputs


def proxy_epoch_dir(dataset, proxy, epoch):
    if int(epoch) == 0:
        return f"results/models/{proxy}"
    return f"results/proxies/{dataset}/{proxy}/epoch-{epoch}"


def model_to_evaluate(wildcards):
    if wildcards.subset == "base":
        return f"results/models/{wildcards.target}"
    return f"results/targets/{wildcards.dataset}/{wildcards.target}/{wildcards.selector}/{wildcards.subset}"


def fresh_tokenizer_dir():
    """The tokenizer every fresh model shares, trained on fresh_models.tokenizer_dataset."""
    return f"results/tokenizers/{config['fresh_models']['tokenizer_dataset']}"


def fresh_tokenizer_input(wildcards):
    if config["models"][wildcards.model]["source"] == "fresh":
        return fresh_tokenizer_dir()
    return []


def tokenizer_name(model):
    """Fresh models share one tokenizer ("fresh"); every other model has its own, named after it."""
    return "fresh" if config["models"][model]["source"] == "fresh" else model


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
    """A random subset needs no scores; the global scheme needs no clusters."""
    subset = Subset.parse(wildcards.subset)
    d, selector = wildcards.dataset, wildcards.selector
    inputs = {"rows": f"results/datasets/{d}/train.jsonl"}
    if subset.method == "ifd":
        inputs["scores"] = f"results/ifd/{d}/{selector}.csv"
    elif subset.method == "length":
        inputs["scores"] = f"results/lengths/{d}.csv"
    elif subset.method != "random":
        inputs["scores"] = f"results/scores/{d}/{selector}.csv"
    if subset.scheme == "cluster":
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


def compare_reference(wildcards):
    """The predictions of the full-data model a model is compared with (that of its seed)."""
    reference = study.pairwise_reference(GRID, wildcards.subset)
    return f"results/eval/{wildcards.dataset}/{wildcards.target}/none/{reference}/predictions.csv"


def judge_reference(wildcards):
    """The responses of the full-data model (of the model's seed) to the same evaluation set."""
    reference = study.pairwise_reference(GRID, wildcards.subset)
    return f"results/responses/{wildcards.dataset}/{wildcards.eval_set}/{wildcards.target}/none/{reference}.json"


def eval_rows(wildcards):
    """The prompts of an evaluation set: the dataset's held-out split, or a prepared named set."""
    if wildcards.eval_set == study.HELDOUT:
        return f"results/datasets/{wildcards.dataset}/test.jsonl"
    return f"results/eval_sets/{wildcards.eval_set}.jsonl"


def judged_models():
    """(evaluation set, target, selector, subset) of every judge job: each set, each compared model."""
    return [(e, *m) for e in EVAL_SETS for m in compared_models()] if JUDGE else []


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
    """The ledgers of a proxy's jobs, by kind (and epoch), for charging each method what it used."""
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
        "scores": [f"results/scores/{d}/{model}.csv" for model in SCORED_MODELS],
        "target_ledgers": [
            f"results/ledger/finetune_target/{d}/{t}/{sel}/{sub}.json"
            for t, sel, sub in trained_targets()
        ],
        "proxy_ledgers": [
            path
            for proxy in GRID["proxies"]
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
