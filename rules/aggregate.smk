# light jobs run on the submitting host, not as cluster jobs
localrules:
    aggregate,
    summary,
    transfer,
    robustness,


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
        # score tables by run: "<model>" or, with grid.proxy_seeds, "<model>/seed<N>"
        proxies=SCORED_RUNS,
        # the same files as the ledger inputs, keyed by what they measured
        target_ledgers=lambda wildcards, input: dict(
            zip(trained_targets(), input.target_ledgers)
        ),
        proxy_ledgers=lambda wildcards: {
            proxy: proxy_ledgers(wildcards.dataset, proxy)
            for proxy in study.proxy_runs(config, GRID["proxies"])
        },
        targets=GRID["targets"],
        compared=compared_models(),
        # (evaluation set, target, selector, subset) of the judge inputs, and the bootstrap of the pooled rows
        judged=judged_models(),
        bootstrap=(
            {k: JUDGE[k] for k in ("bootstrap", "lc_bootstrap", "confidence", "seed")}
            if JUDGE
            else None
        ),
        # the sets the headline judge win rate pools, and how two verdicts make an outcome
        pooled_sets=study.pooled_sets(config) if JUDGE else [],
        tie_rule=schema.defaulted(config, "evaluation")["tie_rule"] if JUDGE else None,
    script:
        "../workflow_scripts/aggregate.py"


rule summary:
    input:
        stats=expand("results/datasets/{dataset}/stats.json", dataset=DATASETS),
        leaks=expand("results/datasets/{dataset}/leaks.json", dataset=DATASETS),
        seeds=expand("results/tables/{dataset}/seeds.csv", dataset=DATASETS),
        paired=expand("results/tables/{dataset}/paired.csv", dataset=DATASETS),
        subsets=expand("results/tables/{dataset}/subsets.csv", dataset=DATASETS),
        rank_correlation=expand(
            "results/tables/{dataset}/rank_correlation.csv", dataset=DATASETS
        ),
        transfer=expand("results/tables/{dataset}/transfer.csv", dataset=DATASETS),
        # proxy recipes against each other, where the study has them
        robustness=expand(
            "results/tables/{dataset}/robustness.csv",
            dataset=DATASETS if len(RECIPES) >= 2 else [],
        ),
        worth=expand("results/tables/{dataset}/worth.csv", dataset=DATASETS),
        # one table per proxy: the first seed's run
        scores=[
            path
            for d in DATASETS
            for path in first_run_scores(d, GRID["proxies"]).values()
        ],
        # what each proxy picked (rules/export.smk), appended to the summary
        inspect=[p for p in export_outputs() if p.startswith("results/inspect/")],
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
        recipes=RECIPES,
        # what the headline judge win rate is: the sets it pools and the tie rule
        judge=(
            {
                "pooled_sets": study.pooled_sets(config),
                "tie_rule": schema.defaulted(config, "evaluation")["tie_rule"],
            }
            if JUDGE
            else None
        ),
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
        scores=expand("results/scores/{{dataset}}/{run}.csv", run=SCORED_RUNS),
        ifd=expand("results/ifd/{{dataset}}/{run}.csv", run=ifd_runs()),
        # the per-cluster counts of the chance overlap
        clusters=(
            ["results/clusters/{dataset}.csv"] if "cluster" in GRID["schemes"] else []
        ),
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
        proxies=SCORED_RUNS,
        ifd_proxies=ifd_runs(),
    script:
        "../workflow_scripts/transfer.py"


# Proxy recipes: the transfer diagnostic's pairs of one base model's recipes, of two seeds of one recipe
# and of a recipe with the target (lpselect.robustness)
rule robustness:
    input:
        "results/tables/{dataset}/transfer.csv",
    output:
        "results/tables/{dataset}/robustness.csv",
    log:
        "results/logs/robustness/{dataset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        recipes=RECIPES,
        targets=GRID["targets"],
    script:
        "../workflow_scripts/robustness.py"


rule diagnostic:
    input:
        diagnostic_outputs(),
