# light jobs run on the submitting host, not as cluster jobs
localrules:
    fetch_dump,
    score_dump,
    dump_tables,
    dump_summary,


# The paper's released perplexities: fetch (download or copy), then the same score table, tables and
# figures as every other study.


rule fetch_dump:
    output:
        expand(
            "results/dumps/{{dataset}}-{{model}}/{epoch}.pkl",
            epoch=["epoch-pre", "epoch-1", "epoch-2", "epoch-3"],
        ),
    log:
        "results/logs/fetch_dump/{dataset}-{model}.log",
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        source=config["dumps"]["source"],
    script:
        "../workflow_scripts/fetch_dump.py"


rule score_dump:
    input:
        rules.fetch_dump.output,
    output:
        "results/scores/{dataset}/{model}.csv",
    log:
        "results/logs/score_dump/{dataset}/{model}.log",
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        seed=config["seed"],
    script:
        "../workflow_scripts/score_dump.py"


rule dump_tables:
    input:
        scores=expand(
            "results/scores/{{dataset}}/{model}.csv", model=config["dumps"]["models"]
        ),
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
        "results/logs/dump_tables/{dataset}.log",
    benchmark:
        "results/benchmarks/dump_tables/{dataset}.tsv"
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        models=config["dumps"]["models"],
        fractions=config["dumps"]["fractions"],
    script:
        "../workflow_scripts/dump_tables.py"


rule dump_summary:
    input:
        rank_correlation=expand(
            "results/tables/{dataset}/rank_correlation.csv", dataset=DATASETS
        ),
        overlap=expand("results/tables/{dataset}/overlap.csv", dataset=DATASETS),
    output:
        report("results/dumps-summary.md", category="Summary"),
    log:
        "results/logs/dump_summary.log",
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        datasets=DATASETS,
        pairs=config["dumps"]["pairs"],
    script:
        "../workflow_scripts/dump_summary.py"
