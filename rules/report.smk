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
        "../envs/lpselect.yaml"
    resources:
        mem_mb=RES["light"]["mem_mb"],
        runtime=RES["light"]["runtime"],
    params:
        models=evaluated_models(),
        proxies=GRID["proxies"],
    script:
        "../workflow_scripts/aggregate.py"


rule figure:
    input:
        metrics="results/tables/{dataset}/metrics.csv",
        composition="results/tables/{dataset}/composition.csv",
        rank_correlation="results/tables/{dataset}/rank_correlation.csv",
        scores=lambda wildcards: expand(
            "results/scores/{dataset}/{proxy}.csv", proxy=GRID["proxies"], **wildcards
        ),
    output:
        report(
            expand("results/figures/{{dataset}}/{{figure}}.{ext}", ext=FORMATS),
            caption="../report/figure.rst",
            category="Figures",
            labels={"dataset": "{dataset}", "figure": "{figure}"},
        ),
    log:
        "results/logs/figure/{dataset}/{figure}.log",
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=RES["light"]["mem_mb"],
        runtime=RES["light"]["runtime"],
    params:
        proxies=GRID["proxies"],
    script:
        "../workflow_scripts/figure.py"
