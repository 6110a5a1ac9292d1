rule train_proxy:
    input:
        model=base_model_dir,
        tokenized=tokenized,
    output:
        epochs=[
            checkpoint(
                f"results/proxies/{{dataset}}/{{proxy}}{{run}}/epoch-{e}",
                KEEP["proxies"],
            )
            for e in range(1, EPOCHS + 1)
        ],
        ledger="results/ledger/train_proxy/{dataset}/{proxy}{run}.json",
        # the Trainer's loss log, laid out as results/ledger/ (whose every JSON lpselect.plan reads as a
        # ledger); the epoch folders that also hold it are temporary
        loss_curve="results/loss_curves/train_proxy/{dataset}/{proxy}{run}.json",
    log:
        "results/logs/train_proxy/{dataset}/{proxy}{run}.log",
    benchmark:
        "results/benchmarks/train_proxy/{dataset}/{proxy}{run}.tsv"
    conda:
        "../envs/model.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("train", "mem_mb"),
        runtime=sized("train", "runtime"),
        gpu=sized("train", "gpus"),
        # one node: --gpus alone lets SLURM spread a job's GPUs over nodes, and torchrun is single-node
        nodes=1,
        gpu_model=sized("train", "gpu_model"),
        cpus_per_gpu=sized("train", "cpus_per_gpu"),
    params:
        # what changes the result; memory, speed and logging knobs (study.training_knobs) are read
        # from the config by the script, so changing them reruns nothing
        # (with a proxy recipe's overrides, models.<proxy>.training)
        hp=lambda wildcards: study.proxy_hp(config, wildcards.proxy),
        # the study seed, or with grid.proxy_seeds the run's grid seed, or the recipe's own seed
        seed=lambda wildcards: study.recipe_seed(
            config, wildcards.proxy, study.proxy_run_seed(config, wildcards.run)
        ),
        # resumable state outside the outputs: Snakemake deletes the outputs of a failed job
        state="results/.state/train_proxy/{dataset}/{proxy}{run}",
    script:
        "../workflow_scripts/train.py"


# every epoch of a proxy in one job: a small model's pass costs less than a job's start and imports
rule extract_losses:
    input:
        models=lambda wildcards: [
            proxy_epoch_dir(wildcards.dataset, wildcards.proxy, e, wildcards.run)
            for e in range(EPOCHS + 1)
        ],
        tokenized=tokenized,
    output:
        losses=[
            f"results/losses/{{dataset}}/{{proxy}}{{run}}/epoch-{e}.csv"
            for e in range(EPOCHS + 1)
        ],
        ledger=[
            f"results/ledger/extract_losses/{{dataset}}/{{proxy}}{{run}}/epoch-{e}.json"
            for e in range(EPOCHS + 1)
        ],
    log:
        "results/logs/extract_losses/{dataset}/{proxy}{run}.log",
    benchmark:
        "results/benchmarks/extract_losses/{dataset}/{proxy}{run}.tsv"
    conda:
        "../envs/model.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("extract", "mem_mb"),
        runtime=sized("extract", "runtime", passes=EPOCHS + 1),
        gpu=sized("extract", "gpus"),
        nodes=1,
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        extraction=study.result_settings(config, "extraction"),
        response_only=False,
        # finished epochs, kept outside the outputs (Snakemake deletes those of a failed job)
        state="results/.state/extract_losses/{dataset}/{proxy}{run}",
    script:
        "../workflow_scripts/extract_losses.py"


# IFD's second pass: the same response tokens without their prompt, at one epoch
rule extract_response_losses:
    input:
        models=lambda wildcards: [proxy_epoch_dir(**wildcards)],
        tokenized=tokenized,
    output:
        losses=["results/losses/{dataset}/{proxy}{run}/response-only/epoch-{epoch}.csv"],
        ledger=[
            "results/ledger/extract_response_losses/{dataset}/{proxy}{run}/epoch-{epoch}.json"
        ],
    log:
        "results/logs/extract_response_losses/{dataset}/{proxy}{run}/epoch-{epoch}.log",
    benchmark:
        "results/benchmarks/extract_response_losses/{dataset}/{proxy}{run}/epoch-{epoch}.tsv"
    conda:
        "../envs/model.yaml"
    threads: sized_threads
    resources:
        mem_mb=sized("extract", "mem_mb"),
        runtime=sized("extract", "runtime"),
        gpu=sized("extract", "gpus"),
        nodes=1,
        gpu_model=sized("extract", "gpu_model"),
        cpus_per_gpu=sized("extract", "cpus_per_gpu"),
    params:
        extraction=study.result_settings(config, "extraction"),
        response_only=True,
    script:
        "../workflow_scripts/extract_losses.py"


rule score:
    input:
        losses=expand(
            "results/losses/{{dataset}}/{{proxy}}{{run}}/epoch-{epoch}.csv",
            epoch=range(EPOCHS + 1),
        ),
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        "results/scores/{dataset}/{proxy}{run}.csv",
    log:
        "results/logs/score/{dataset}/{proxy}{run}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        seed=config["seed"],
        # the schedule's n: LP(1) only when the proxy was read at its last epoch
        epochs=config["training"]["epochs"],
    script:
        "../workflow_scripts/score.py"


rule ifd:
    input:
        prompted=f"results/losses/{{dataset}}/{{proxy}}{{run}}/epoch-{IFD_EPOCH}.csv",
        response_only=f"results/losses/{{dataset}}/{{proxy}}{{run}}/response-only/epoch-{IFD_EPOCH}.csv",
    output:
        "results/ifd/{dataset}/{proxy}{run}.csv",
    log:
        "results/logs/ifd/{dataset}/{proxy}{run}.log",
    conda:
        "../envs/light.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    script:
        "../workflow_scripts/ifd.py"


# response lengths for the `length` method, in tokens of the first proxy's tokenizer
rule response_lengths:
    input:
        model=f"results/models/{study.base_model(config, GRID['proxies'][0])}",
        rows="results/datasets/{dataset}/train.jsonl",
    output:
        "results/lengths/{dataset}.csv",
    log:
        "results/logs/response_lengths/{dataset}.log",
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=light("mem_mb"),
        runtime=light("runtime"),
    params:
        template=config["prompt_template"],
    script:
        "../workflow_scripts/response_lengths.py"
