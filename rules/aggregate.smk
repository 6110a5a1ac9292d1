# light jobs run on the submitting host, not as cluster jobs
localrules:
    aggregate,
    summary,
    transfer,


rule aggregate:
    input:
        unpack(aggregate_inputs),
    output:
        **{
            table: report(
                f"results/tables/{{dataset}}/{table}.csv",
                category="Tables",
                labels={"dataset": "{dataset}", "table": table},
            )
            for table in TABLES
        },
    log:
        "results/logs/aggregate/{dataset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        models=evaluated_models(),
        proxies=SCORED_MODELS,
        # the same files as the ledger inputs, keyed by what they measured
        target_ledgers=lambda wildcards, input: dict(
            zip(trained_targets(), input.target_ledgers)
        ),
        proxy_ledgers=lambda wildcards: {
            proxy: proxy_ledgers(wildcards.dataset, proxy) for proxy in GRID["proxies"]
        },
        targets=GRID["targets"],
        compared=compared_models(),
        # (evaluation set, target, selector, subset) of the judge inputs, and the bootstrap of the pooled rows
        judged=judged_models(),
        bootstrap=(
            {k: JUDGE[k] for k in ("bootstrap", "confidence", "seed")}
            if JUDGE
            else None
        ),
    script:
        "../workflow_scripts/aggregate.py"


rule summary:
    input:
        stats=expand("results/datasets/{dataset}/stats.json", dataset=DATASETS),
        seeds=expand("results/tables/{dataset}/seeds.csv", dataset=DATASETS),
        subsets=expand("results/tables/{dataset}/subsets.csv", dataset=DATASETS),
        rank_correlation=expand(
            "results/tables/{dataset}/rank_correlation.csv", dataset=DATASETS
        ),
        transfer=expand("results/tables/{dataset}/transfer.csv", dataset=DATASETS),
        scores=expand(
            "results/scores/{dataset}/{proxy}.csv",
            dataset=DATASETS,
            proxy=GRID["proxies"],
        ),
    output:
        report("results/summary.md", category="Summary"),
    log:
        "results/logs/summary.log",
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        datasets=DATASETS,
        proxies=GRID["proxies"],
    script:
        "../workflow_scripts/summary.py"


# Transfer diagnostic: do the scoring models (proxies and grid.diagnostic_models) agree (rank
# correlation, overlap of their selections) before any target is fine-tuned? `snakemake --cores 2
# diagnostic` runs it without a fine-tune.
rule transfer:
    input:
        subsets=lambda wildcards: [
            f"results/subsets/{wildcards.dataset}/{sel}/{sub}.json"
            for sel, sub in study.diagnostic_subsets(GRID)
        ],
        scores=expand("results/scores/{{dataset}}/{model}.csv", model=SCORED_MODELS),
        ifd=expand("results/ifd/{{dataset}}/{proxy}.csv", proxy=ifd_proxies()),
    output:
        "results/tables/{dataset}/transfer.csv",
    log:
        "results/logs/transfer/{dataset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        subsets=study.diagnostic_subsets(GRID),
        proxies=SCORED_MODELS,
        ifd_proxies=ifd_proxies(),
    script:
        "../workflow_scripts/transfer.py"


rule diagnostic:
    input:
        diagnostic_outputs(),
