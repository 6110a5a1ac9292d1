# downloads (hub datasets) run where the network is, on the submitting host: compute nodes are often
# offline, and preparing rows is light
localrules:
    prepare_dataset,


rule prepare_dataset:
    output:
        train="results/datasets/{dataset}/train.jsonl",
        test="results/datasets/{dataset}/test.jsonl",
        stats="results/datasets/{dataset}/stats.json",
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    script:
        "../workflow_scripts/prepare_dataset.py"
