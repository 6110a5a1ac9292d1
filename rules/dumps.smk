# light jobs run on the submitting host, not as cluster jobs
localrules:
    fetch_dump,
    score_dump,
    dump_scorable,
    dump_tables,
    dump_summary,


# The paper's released perplexities: fetch (download or copy), then the same score table, tables and
# figures as every other study.

# the schema's default (validation does not fill defaults in)
UNSCORABLE = config["dumps"].get("unscorable", "exclude")


rule fetch_dump:
    output:
        expand(
            "results/dumps/{{dataset}}-{{model}}/{epoch}.pkl",
            epoch=["epoch-pre", "epoch-1", "epoch-2", "epoch-3"],
        ),
    log:
        "results/logs/fetch_dump/{dataset}-{model}.log",
    conda:
        "../envs/light.yaml"
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
        "results/dumps/scores/{dataset}/{model}.csv",
    log:
        "results/logs/score_dump/{dataset}/{model}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        seed=config["seed"],
    script:
        "../workflow_scripts/score_dump.py"


# Rows with perplexity 1.0 at every epoch are the official code's value for a prompt that filled the
# 512-token window, not a measurement. score_dump keeps all rows (with a `scorable` column); this rule
# writes the score tables the tables and figures read: only the rows scorable in every model of the
# dataset (dumps.unscorable: exclude, the default) or all rows, as published (keep).
rule dump_scorable:
    input:
        scores=expand(
            "results/dumps/scores/{{dataset}}/{model}.csv",
            model=config["dumps"]["models"],
        ),
    output:
        scores=expand(
            "results/scores/{{dataset}}/{model}.csv", model=config["dumps"]["models"]
        ),
        counts=report(
            "results/tables/{dataset}/unscorable.csv",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "unscorable"},
        ),
    log:
        "results/logs/dump_scorable/{dataset}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        models=config["dumps"]["models"],
        unscorable=UNSCORABLE,
    script:
        "../workflow_scripts/dump_scorable.py"


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
        "../envs/light.yaml"
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
        # both versions (all rows, scorable rows) are computed from the all-rows score tables
        scores=expand(
            "results/dumps/scores/{dataset}/{model}.csv",
            dataset=DATASETS,
            model=config["dumps"]["models"],
        ),
        unscorable=expand("results/tables/{dataset}/unscorable.csv", dataset=DATASETS),
    output:
        report("results/dumps-summary.md", category="Summary"),
    log:
        "results/logs/dump_summary.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        datasets=DATASETS,
        models=config["dumps"]["models"],
        pairs=config["dumps"]["pairs"],
        unscorable=UNSCORABLE,
    script:
        "../workflow_scripts/dump_summary.py"
