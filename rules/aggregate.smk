# light jobs run on the submitting host, not as cluster jobs
localrules:
    aggregate,


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
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        models=evaluated_models(),
        proxies=GRID["proxies"],
        # the same files as the ledger inputs, keyed by what they measured
        target_ledgers=lambda wildcards, input: dict(
            zip(trained_targets(), input.target_ledgers)
        ),
        proxy_ledgers=lambda wildcards: {
            proxy: proxy_ledgers(wildcards.dataset, proxy) for proxy in GRID["proxies"]
        },
        targets=GRID["targets"],
        judged=judged_models() if JUDGE else [],
    script:
        "../workflow_scripts/aggregate.py"
