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
        targets=GRID["targets"],
        judged=judged_models() if JUDGE else [],
    script:
        "../workflow_scripts/aggregate.py"
