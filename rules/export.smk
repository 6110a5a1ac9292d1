# The result as data: every subset's rows in the input's own format with id, score, cluster and rank
# columns (results/export/), and per proxy a table of the hardest and easiest rows it found and what
# each cluster lost (results/inspect/). `snakemake --cores 2 select_only` makes them without training
# any target. Their input functions: rules/common_export.smk.
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
