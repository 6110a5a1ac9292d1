rule finetune_target:
    input:
        unpack(finetune_inputs),
    output:
        directory("results/targets/{dataset}/{target}/{selector}/{subset}"),
    log:
        "results/logs/finetune_target/{dataset}/{target}/{selector}/{subset}.log",
    benchmark:
        "results/benchmarks/finetune_target/{dataset}/{target}/{selector}/{subset}.tsv"
    wildcard_constraints:
        subset=f"full|{SUBSET_PATTERN}",
    conda:
        "../envs/lpselect.yaml"
    threads: RES["threads"]
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    params:
        hp=config["training"],
        seed=lambda wildcards: (
            config["seed"]
            if wildcards.subset == "full"
            else Subset.parse(wildcards.subset).seed
        ),
        max_length=config["max_length"],
        template=config["prompt_template"],
        state="results/.state/finetune_target/{dataset}/{target}/{selector}/{subset}",
    script:
        "../workflow_scripts/train.py"
