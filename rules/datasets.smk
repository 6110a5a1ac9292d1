# evaluation.drop_leaked: the training rows that contain an evaluation prompt are dropped here, where
# the training rows are fixed (before tokenization and everything after); the named sets are prepared
# from their sources alone, so reading them here keeps the DAG acyclic
DROP_LEAKED = schema.defaulted(config, "evaluation")["drop_leaked"]


# downloads (hub datasets) run where the network is, on the submitting host: compute nodes are often
# offline, and preparing rows is light
localrules:
    prepare_dataset,


rule prepare_dataset:
    input:
        eval_sets=(
            [f"results/eval_sets/{name}.jsonl" for name in NAMED_SETS]
            if DROP_LEAKED
            else []
        ),
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
        drop_leaked=DROP_LEAKED,
    script:
        "../workflow_scripts/prepare_dataset.py"
