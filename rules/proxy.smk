rule train_proxy:
    input:
        model="results/models/{proxy}",
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        epochs=[
            directory(f"results/proxies/{{dataset}}/{{proxy}}/epoch-{e}")
            for e in range(1, EPOCHS + 1)
        ],
        ledger="results/ledger/train_proxy/{dataset}/{proxy}.json",
    log:
        "results/logs/train_proxy/{dataset}/{proxy}.log",
    benchmark:
        "results/benchmarks/train_proxy/{dataset}/{proxy}.tsv"
    conda:
        "../envs/lpselect.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("train", "mem_mb"),
        runtime=sized("train", "runtime"),
        gpu=sized("train", "gpus"),
        gpu_model=sized("train", "gpu_model"),
        cpus_per_gpu=sized("train", "cpus_per_gpu"),
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
        losses="results/losses/{dataset}/{proxy}/epoch-{epoch}.csv",
        ledger="results/ledger/extract_losses/{dataset}/{proxy}/epoch-{epoch}.json",
    log:
        "results/logs/extract_losses/{dataset}/{proxy}/epoch-{epoch}.log",
    benchmark:
        "results/benchmarks/extract_losses/{dataset}/{proxy}/epoch-{epoch}.tsv"
    conda:
        "../envs/lpselect.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("extract", "mem_mb"),
        runtime=sized("extract", "runtime"),
        gpu=sized("extract", "gpus"),
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        extraction=config["extraction"],
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
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        seed=config["seed"],
    script:
        "../workflow_scripts/score.py"
