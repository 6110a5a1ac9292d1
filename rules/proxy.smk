rule train_proxy:
    input:
        model="results/models/{proxy}",
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        epochs=[
            directory(f"results/proxies/{{dataset}}/{{proxy}}/epoch-{e}")
            for e in range(1, EPOCHS + 1)
        ],
    log:
        "results/logs/train_proxy/{dataset}/{proxy}.log",
    benchmark:
        "results/benchmarks/train_proxy/{dataset}/{proxy}.tsv"
    conda:
        "../envs/lpselect.yaml"
    threads: RES["threads"]
    resources:
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    params:
        hp=config["training"],
        seed=config["seed"],
        max_length=config["max_length"],
        template=config["prompt_template"],
        # resumable state outside the outputs: Snakemake deletes the outputs of a failed job
        state="results/.state/train_proxy/{dataset}/{proxy}",
    script:
        "../workflow_scripts/train.py"


rule extract_losses:
    input:
        model=lambda wildcards: proxy_epoch_dir(**wildcards),
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        "results/losses/{dataset}/{proxy}/epoch-{epoch}.csv",
    log:
        "results/logs/extract_losses/{dataset}/{proxy}/epoch-{epoch}.log",
    benchmark:
        "results/benchmarks/extract_losses/{dataset}/{proxy}/epoch-{epoch}.tsv"
    conda:
        "../envs/lpselect.yaml"
    threads: RES["threads"]
    resources:
        mem_mb=RES["extract"]["mem_mb"],
        runtime=RES["extract"]["runtime"],
    params:
        batch_size=config["extraction"]["batch_size"],
        max_length=config["max_length"],
        template=config["prompt_template"],
    script:
        "../workflow_scripts/extract_losses.py"


rule score:
    input:
        losses=expand(
            "results/losses/{{dataset}}/{{proxy}}/epoch-{epoch}.csv",
            epoch=range(EPOCHS + 1),
        ),
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        "results/scores/{dataset}/{proxy}.csv",
    log:
        "results/logs/score/{dataset}/{proxy}.log",
    conda:
        "../envs/lpselect.yaml"
    resources:
        mem_mb=RES["light"]["mem_mb"],
        runtime=RES["light"]["runtime"],
    params:
        seed=config["seed"],
    script:
        "../workflow_scripts/score.py"
