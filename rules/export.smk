# The result as data: every subset's rows in the input's own format with id, score, cluster and rank
# columns (results/export/), and per proxy a table of the hardest and easiest rows it found and what
# each cluster lost (results/inspect/). `snakemake --cores 2 select_only` makes them without training
# any target.

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


localrules:
    export_subset,
    export_parquet,
    inspect,
    select_only,


rule export_subset:
    input:
        unpack(export_inputs),
    output:
        "results/export/{dataset}/{selector}/{subset}.jsonl",
    log:
        "results/logs/export_subset/{dataset}/{selector}/{subset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        field_map=lambda wildcards: config["datasets"][wildcards.dataset].get(
            "field_map"
        ),
    script:
        "../workflow_scripts/export_subset.py"


rule export_parquet:
    input:
        "results/export/{dataset}/{selector}/{subset}.jsonl",
    output:
        "results/export/{dataset}/{selector}/{subset}.parquet",
    log:
        "results/logs/export_parquet/{dataset}/{selector}/{subset}.log",
    # pyarrow is in the model env only
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    script:
        "../workflow_scripts/export_parquet.py"


rule inspect:
    input:
        unpack(inspect_inputs),
    output:
        md=report(
            "results/inspect/{dataset}/{selector}.md",
            category="Inspection",
            labels={"dataset": "{dataset}", "proxy": "{selector}"},
        ),
        csv="results/inspect/{dataset}/{selector}.csv",
    log:
        "results/logs/inspect/{dataset}/{selector}.log",
    # the model env: it reads the tokenized split (datasets' format) for a conversation's scored tokens per round
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        methods=inspected_methods(),
    script:
        "../workflow_scripts/inspect.py"


rule select_only:
    input:
        export_outputs(),
