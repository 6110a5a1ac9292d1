# The input functions of the result as data (rules/export.smk): every subset exported and what each proxy
# picked. Apart from common.smk to keep that file to the study's own inputs; apart from export.smk because
# `snakemake --lint` wants functions and rules in different files.

INSPECTED_METHODS = ("lp1", "lp_app", "ppl0", "ifd")


def export_inputs(wildcards):
    """What a subset's export reads: the subset, its rows and scores, and the clusters (always: the
    export names every row's cluster)."""
    inputs = subset_inputs(wildcards)
    inputs["clusters"] = f"results/clusters/{wildcards.dataset}.csv"
    inputs["subset"] = (
        f"results/subsets/{wildcards.dataset}/{wildcards.selector}/{wildcards.subset}.json"
    )
    return inputs


def inspected_methods():
    """The grid's methods that rank rows by a proxy's score (the inspection's tables)."""
    return [m for m in INSPECTED_METHODS if m in GRID["methods"] + GRID["thirds"]]


def inspect_inputs(wildcards):
    """A proxy's scores and picks; with grid.proxy_seeds, those of its first seed's run."""
    d, proxy = wildcards.dataset, wildcards.selector
    run = study.proxy_run(config, GRID["seeds"][0])
    return {
        "rows": f"results/datasets/{d}/train.jsonl",
        "scores": f"results/scores/{d}/{proxy}{run}.csv",
        "ifd": (
            [f"results/ifd/{d}/{proxy}{run}.csv"] if "ifd" in GRID["methods"] else []
        ),
        "clusters": f"results/clusters/{d}.csv",
        "subsets": [
            f"results/subsets/{d}/{sel}/{sub}.json"
            for sel, sub in study.subsets(GRID)
            if sel == proxy and (not run or Subset.parse(sub).seed == GRID["seeds"][0])
        ],
        # the scored tokens per round: what drives a conversation's score
        "tokenized": f"results/tokenized/{d}/{tokenizer_name(proxy)}",
    }


def export_outputs():
    """Every subset exported (JSONL; parquet too for a parquet input) and every proxy's picks
    inspected: what `snakemake select_only` makes, without fine-tuning anything."""
    outputs = []
    for d in DATASETS:
        spec = config["datasets"][d]
        exts = ["jsonl"] + (
            ["parquet"] if str(spec.get("path", "")).endswith(".parquet") else []
        )
        outputs += [
            f"results/export/{d}/{sel}/{sub}.{ext}"
            for sel, sub in study.subsets(GRID)
            for ext in exts
        ]
        if inspected_methods():
            outputs += expand(
                "results/inspect/{dataset}/{proxy}.md",
                dataset=d,
                proxy=GRID["proxies"],
            )
    return outputs
